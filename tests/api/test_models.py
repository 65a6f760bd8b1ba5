"""Many models behind one app: ``/models``, serving by name, aliases, eviction, OIP."""

from __future__ import annotations

import asyncio
import gc
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from anomaly_api import registry
from anomaly_api.api.app import create_app
from anomaly_api.config import Settings
from anomaly_api.service.fleet import SERVING_BYTES, ModelFleet
from api_testing import (
    ANOMALOUS,
    NORMAL,
    assert_error,
    lifespan,
    make_settings,
    open_app_state,
    samples,
)
from factories import fit_pumps, fit_tiny_artifact

T0 = "2026-11-29T12:00:00Z"
ADMIN = {"X-API-Key": "admin-key-1"}


@pytest.fixture(scope="module")
def fleet_dir(
    tmp_path_factory: pytest.TempPathFactory, tiny_artifacts_dir: Path, ta_artifacts_dir: Path
) -> Path:
    """``default`` (tiny-1), ``pumps`` (point-wise p1, p2 candidate) and ``line`` (the
    time-aware ta-1); tests that move aliases copy it first."""
    root = tmp_path_factory.mktemp("fleet")
    shutil.copytree(tiny_artifacts_dir, root, dirs_exist_ok=True)
    fit_pumps(root)
    shutil.copytree(ta_artifacts_dir, registry.model_dir(root, "line"))
    return root


@pytest.fixture
def own_fleet_dir(tmp_path: Path, fleet_dir: Path) -> Path:
    """A private, writable copy of ``fleet_dir``."""
    shutil.copytree(fleet_dir, tmp_path / "fleet")
    return tmp_path / "fleet"


@asynccontextmanager
async def fleet_app(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, ModelFleet]]:
    """A client of a fresh app and its fleet (for white-box checks)."""
    async with open_app_state(settings) as (client, state):
        yield client, state["fleet"]


@pytest.fixture
async def client(fleet_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with fleet_app(make_settings(fleet_dir)) as (http, _):
        yield http


async def test_models_are_listed_with_their_aliases(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/models")).json()["models"]
    assert [m["name"] for m in listed] == ["default", "line", "pumps"]
    assert listed[2]["aliases"] == {"candidate": "p2", "production": "p1"}
    assert listed[2]["loaded_versions"] == []  # loaded on first use only
    assert listed[0]["loaded_versions"] == ["tiny-1"]


async def test_a_model_reads_its_versions_kind_features_and_thresholds(
    client: httpx.AsyncClient,
) -> None:
    pumps = (await client.get("/models/pumps")).json()
    assert pumps["kind"] == "point-wise"
    assert [v["version"] for v in pumps["versions"]] == ["p2", "p1"]
    assert pumps["features"] == [f"f{i}" for i in range(8)]
    assert set(pumps["versions"][0]["thresholds"]) == {
        "isolation_forest",
        "local_outlier_factor",
        "zscore",
    }
    line = (await client.get("/models/line")).json()
    assert line["kind"] == "time-aware"
    assert line["aliases"] == {"production": "ta-1"}


async def test_serving_by_name_scores_with_that_model(client: httpx.AsyncClient) -> None:
    by_name = await client.post("/models/pumps/predict", json={"features": ANOMALOUS})
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["model_version"] == "p1"
    assert by_name.json()["is_anomaly"] is True
    single = (await client.post("/predict", json={"features": NORMAL})).json()
    default = (await client.post("/models/default/predict", json={"features": NORMAL})).json()
    assert default["model_version"] == single["model_version"] == "tiny-1"
    assert default["anomaly_score"] == single["anomaly_score"]
    batch = await client.post(
        "/models/pumps/predict/batch",
        json={"observations": [{"features": NORMAL}, {"features": ANOMALOUS}]},
    )
    assert [p["model_version"] for p in batch.json()["predictions"]] == ["p1", "p1"]
    pumps_score = by_name.json()["anomaly_score"]
    tiny = (await client.post("/predict", json={"features": ANOMALOUS})).json()
    assert tiny["anomaly_score"] != pumps_score  # another fit, another score (not the cache)


@pytest.mark.parametrize(
    "path",
    ["/models/nope/predict", "/models/Pumps/predict", "/models/..%2F..%2Fetc/predict"],
)
async def test_unknown_models_and_path_tricks_are_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, json={"features": NORMAL})
    assert response.status_code == 404, response.text
    assert "pumps" not in response.text.lower() or "unknown model" in response.text


async def test_unknown_model_answers_in_the_api_format(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/models/nope"), 404, "model_not_found", "unknown model 'nope'")
    response = await client.post("/models/nope/predict/window", json={})
    assert_error(response, 404, "model_not_found")


async def test_point_wise_and_time_aware_models_side_by_side(client: httpx.AsyncClient) -> None:
    n = len((await client.get("/models/line")).json()["features"])
    refused = await client.post("/models/line/predict", json={"features": [0.0] * n})
    assert_error(refused, 422, "model_is_time_aware")
    timestamps = [f"2026-11-29T12:{m:02d}:00Z" for m in range(3)]
    window = await client.post(
        "/models/line/predict/window",
        json={"timestamps": timestamps, "readings": [[0.1] * n] * 3},
    )
    assert window.status_code == 200, window.text
    assert window.json()["model_kind"] == "time-aware"
    point = await client.post(
        "/models/pumps/predict/window", json={"timestamps": timestamps, "readings": [NORMAL] * 3}
    )
    assert point.json()["model_kind"] == "point-wise"
    assert point.json()["model_version"] == "p1"


async def test_a_stream_is_bound_to_its_model(client: httpx.AsyncClient) -> None:
    body = {"timestamps": [T0], "readings": [NORMAL]}
    first = await client.post("/models/pumps/streams/s-1/readings", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["model_version"] == "p1"
    assert (await client.get("/models/pumps/streams/s-1")).json()["total"] == 1
    assert (await client.get("/streams/s-1")).status_code == 404  # default has no such stream
    other = await client.post("/streams/s-1/readings", json=body)  # same id, default's stream
    assert other.json()["stream"]["new_stream"] is True
    assert (await client.get("/models/pumps/streams/s-1")).json()["total"] == 1
    assert (await client.get("/models/pumps/streams/s-1/events")).status_code == 200
    listed = (await client.get("/models/pumps/streams?limit=5")).json()
    assert [s["stream_id"] for s in listed["streams"]] == ["s-1"]
    assert listed == (await client.get("/streams?limit=5")).json() | {"streams": listed["streams"]}
    scores = (await client.get("/models/pumps/streams/s-1/scores")).json()
    assert [s["anomaly_score"] for s in scores["scores"]] == [
        first.json()["answers"][0]["anomaly_score"]
    ]
    assert (await client.get("/models/pumps/streams?limit=0")).status_code == 422
    assert (await client.get("/models/nope/streams")).status_code == 404
    assert (await client.get("/models/pumps/streams/s-2/scores")).status_code == 404
    assert (await client.delete("/models/pumps/streams/s-1")).status_code == 204
    assert (await client.get("/models/pumps/streams/s-1")).status_code == 404
    assert (await client.get("/streams/s-1")).status_code == 200


async def test_per_model_metrics_carry_a_bounded_model_label(fleet_dir: Path) -> None:
    async with fleet_app(make_settings(fleet_dir, metrics_max_models=2)) as (http, _):
        await http.post("/predict", json={"features": NORMAL})
        await http.post("/models/pumps/predict", json={"features": NORMAL})
        n = len((await http.get("/models/line")).json()["features"])
        await http.post(
            "/models/line/predict/window", json={"timestamps": [T0], "readings": [[0.1] * n]}
        )
        found = samples((await http.get("/metrics")).text)
    assert found[("anomaly_model_rows_total", (("model", "default"),))] == 1
    assert found[("anomaly_model_rows_total", (("model", "pumps"),))] == 1
    assert found[("anomaly_model_rows_total", (("model", "other"),))] == 1  # past the cap
    assert found[("anomaly_model_loads_total", (("model", "pumps"), ("result", "ok")))] == 1
    assert found[("anomaly_models_loaded", ())] == 2


async def test_alias_rollback_and_delete_through_the_api(own_fleet_dir: Path) -> None:
    settings = make_settings(own_fleet_dir, admin_api_keys=["admin-key-1"])
    async with fleet_app(settings) as (http, fleet):
        assert (await http.post("/models/pumps/predict", json={"features": NORMAL})).json()[
            "model_version"
        ] == "p1"
        assert fleet.loaded("pumps") == ["p1"]
        moved = await http.post(
            "/models/pumps/aliases/production", json={"version": "p2"}, headers=ADMIN
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["previous"] == "p1"
        assert moved.json()["announced"] is False  # no Redis: said, not hidden
        served = await http.post("/models/pumps/predict", json={"features": NORMAL})
        assert served.json()["model_version"] == "p2"
        refused = await http.delete("/models/pumps/versions/p2", headers=ADMIN)
        assert_error(refused, 409, "model_conflict", "production")
        back = await http.post("/models/pumps/rollback", headers=ADMIN)
        assert back.json()["version"] == "p1"
        served = await http.post("/models/pumps/predict", json={"features": NORMAL})
        assert served.json()["model_version"] == "p1"
        assert_error(
            await http.post("/models/pumps/rollback", headers=ADMIN), 409, "model_conflict"
        )
        assert_error(
            await http.delete("/models/pumps/versions/p2", headers=ADMIN),
            409,
            "model_conflict",
            "candidate",
        )
        await http.post("/models/pumps/aliases/candidate", json={"version": "p1"}, headers=ADMIN)
        assert (await http.delete("/models/pumps/versions/p2", headers=ADMIN)).status_code == 204
        assert_error(
            await http.post(
                "/models/pumps/aliases/production", json={"version": "p2"}, headers=ADMIN
            ),
            404,
            "model_not_found",
            "no version 'p2'",
        )
        detail = (await http.get("/models/pumps")).json()
        assert [v["version"] for v in detail["versions"]] == ["p1"]


async def test_moving_default_production_swaps_the_served_model(own_fleet_dir: Path) -> None:
    fit_tiny_artifact(own_fleet_dir, "tiny-2", seed=5)
    (own_fleet_dir / "LATEST").write_text("tiny-1\n")
    settings = make_settings(own_fleet_dir, admin_api_keys=["admin-key-1"])
    async with fleet_app(settings) as (http, _):
        moved = await http.post(
            "/models/default/aliases/production", json={"version": "tiny-2"}, headers=ADMIN
        )
        assert moved.status_code == 200, moved.text
        served = await http.post("/predict", json={"features": NORMAL})
        assert served.json()["model_version"] == "tiny-2"
        await http.post("/models/default/rollback", headers=ADMIN)
        served = await http.post("/predict", json={"features": NORMAL})
        assert served.json()["model_version"] == "tiny-1"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/models/pumps/aliases/production", {"version": "p2"}),
        ("POST", "/models/pumps/rollback", None),
        ("DELETE", "/models/pumps/versions/p2", None),
    ],
)
async def test_admin_model_routes_need_the_admin_key(
    fleet_dir: Path, method: str, path: str, body: object
) -> None:
    settings = make_settings(fleet_dir, admin_api_keys=["admin-key-1"], api_keys=["user-key"])
    async with fleet_app(settings) as (http, _):
        missing = await http.request(method, path, json=body)
        assert_error(missing, 401, "missing_api_key")
        user = await http.request(method, path, json=body, headers={"X-API-Key": "user-key"})
        assert_error(user, 403, "invalid_api_key")
    assert registry.resolve_alias(fleet_dir, "pumps") == "p1"  # nothing moved


async def test_bad_alias_names_and_versions_are_422(own_fleet_dir: Path) -> None:
    settings = make_settings(own_fleet_dir, admin_api_keys=["admin-key-1"])
    async with fleet_app(settings) as (http, _):
        bad_alias = await http.post(
            "/models/pumps/aliases/Prod", json={"version": "p2"}, headers=ADMIN
        )
        assert_error(bad_alias, 422, "invalid_input", "alias")
        bad_version = await http.post(
            "/models/pumps/aliases/production", json={"version": "../p2"}, headers=ADMIN
        )
        assert bad_version.status_code == 422


async def test_eviction_under_a_tiny_budget_never_fails_a_request(own_fleet_dir: Path) -> None:
    for name, seed in (("a", 11), ("b", 12), ("c", 13)):
        fit_tiny_artifact(registry.model_dir(own_fleet_dir, name), f"{name}1", seed=seed)
    settings = make_settings(own_fleet_dir, model_memory_mb=0.0001)  # ~100 bytes: one at most
    async with fleet_app(settings) as (http, fleet):
        held = await fleet.acquire("a")  # a request in flight on `a`
        answers = await asyncio.gather(
            *(
                http.post(f"/models/{name}/predict", json={"features": NORMAL})
                for name in ["b", "c", "a", "b", "c", "a"] * 3
            )
        )
        assert [r.status_code for r in answers] == [200] * 18
        assert "a" in [s.name for s in fleet._resident.values()]  # never unloaded while held
        assert held.predictor.version == "a1"
        fleet.release(held)
        assert fleet.resident_bytes() <= fleet.budget_bytes or len(fleet._resident) == 0
        assert fleet.resident_bytes() == sum(s.size_bytes for s in fleet._resident.values())
        assert len(fleet._resident) == 0  # every model over the budget, idle: all unloaded
        again = await http.post("/models/a/predict", json={"features": NORMAL})
        assert again.json()["model_version"] == "a1"  # loaded again on demand
        metrics = samples((await http.get("/metrics")).text)
    assert metrics[("anomaly_model_evictions_total", (("model", "a"),))] >= 1


@pytest.mark.parametrize("backend", ["fast", "sklearn"])
async def test_a_loaded_model_counts_its_file_and_its_compiled_scorer(
    fleet_dir: Path, backend: str
) -> None:
    file = (registry.model_dir(fleet_dir, "pumps") / "p1" / "model.joblib").stat().st_size
    async with fleet_app(make_settings(fleet_dir, inference_backend=backend)) as (http, fleet):
        await http.post("/models/pumps/predict", json={"features": NORMAL})
        served = fleet._resident[("pumps", None)]
        beside = served.size_bytes - file - SERVING_BYTES
        if backend == "sklearn":
            assert beside == 0  # the model scores itself: nothing beside it
        else:
            assert beside > file * 0.05  # the kernel's tables
        assert fleet.resident_bytes() == served.size_bytes
        assert all(o is not served.runtime for o in gc.get_objects())  # frozen, never walked
        listed = {
            m["name"]: m["loaded_versions"] for m in (await http.get("/models")).json()["models"]
        }
    assert listed == {"default": ["tiny-1"], "line": [], "pumps": ["p1"]}


async def test_concurrent_first_requests_share_one_load(own_fleet_dir: Path) -> None:
    async with fleet_app(make_settings(own_fleet_dir)) as (http, _):
        answers = await asyncio.gather(
            *(http.post("/models/pumps/predict", json={"features": NORMAL}) for _ in range(8))
        )
        assert {r.status_code for r in answers} == {200}
        metrics = samples((await http.get("/metrics")).text)
    assert metrics[("anomaly_model_loads_total", (("model", "pumps"), ("result", "ok")))] == 1


async def test_oip_repository_index_lists_every_model(client: httpx.AsyncClient) -> None:
    index = await client.post("/v2/repository/index")
    assert index.status_code == 200
    assert index.json() == [
        {"name": "anomaly-detector", "version": "tiny-1", "state": "READY", "reason": ""},
        {
            "name": "line",
            "version": "ta-1",
            "state": "UNAVAILABLE",
            "reason": "unloaded (loads on its first request)",
        },
        {
            "name": "pumps",
            "version": "p1",
            "state": "UNAVAILABLE",
            "reason": "unloaded (loads on its first request)",
        },
    ]
    infer = await client.post(
        "/v2/models/pumps/infer",
        json={"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 8], "data": NORMAL}]},
    )
    assert infer.status_code == 200, infer.text
    assert infer.json()["model_name"] == "pumps"
    assert infer.json()["model_version"] == "p1"
    ready = (await client.post("/v2/repository/index", json={"ready": True})).json()
    assert [(m["name"], m["state"]) for m in ready] == [
        ("anomaly-detector", "READY"),
        ("pumps", "READY"),
    ]
    pinned = await client.get("/v2/models/pumps/versions/p2")
    assert pinned.json()["versions"] == ["p2"]
    assert (await client.get("/v2/models/pumps/versions/p9/ready")).status_code == 404
    assert (await client.get("/v2/models/nope/ready")).status_code == 404
    assert (await client.post("/v2/repository/index", json=[1])).status_code == 400


async def test_unknown_names_leave_nothing_loaded_or_kept(fleet_dir: Path) -> None:
    async with fleet_app(make_settings(fleet_dir)) as (http, fleet):
        for name in ("nope", "other-1", "x" * 63):
            response = await http.post(f"/models/{name}/predict", json={"features": NORMAL})
            assert_error(response, 404, "model_not_found", f"unknown model '{name}'")
        assert fleet._resident == {}
        assert fleet._stores == {}
        metrics = samples((await http.get("/metrics")).text)
    failed = ("anomaly_model_loads_total", (("model", "nope"), ("result", "failed")))
    assert metrics[failed] == 1


async def test_admin_model_routes_refuse_remote_clients_while_no_key_is_set(
    own_fleet_dir: Path,
) -> None:
    async with lifespan(create_app(make_settings(own_fleet_dir))) as manager:
        remote = httpx.ASGITransport(app=manager.app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=remote, base_url="http://testserver") as http:
            await _refused_remotely(http)
    assert registry.resolve_alias(own_fleet_dir, "pumps") == "p1"
    assert (registry.model_dir(own_fleet_dir, "pumps") / "p2").is_dir()


async def _refused_remotely(http: httpx.AsyncClient) -> None:
    """Every admin route of a named model refuses ``http`` (a remote client, no key)."""
    moved = await http.post("/models/pumps/aliases/production", json={"version": "p2"})
    assert_error(moved, 403, "admin_key_not_configured", "ANOMALY_ADMIN_API_KEYS")
    assert_error(await http.post("/models/pumps/rollback"), 403, "admin_key_not_configured")
    deleted = await http.delete("/models/pumps/versions/p2")
    assert_error(deleted, 403, "admin_key_not_configured")
    assert (await http.get("/models/pumps")).status_code == 200  # reading stays open
