"""Part ``quality.feedback``: do ``false_alarm`` labels lower the rest of a stream's false
alarms without losing true events? (protocol: docs/tuning-false-alarms.md, Feedback)"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

if TYPE_CHECKING:
    import httpx

    from bench.__main__ import Context

CYCLE_AMPLITUDE = 2.0
CYCLE_PERIOD = 2000
PER_REQUEST = 250


def live_stream(seed: int, rows: int, *, cycle: bool = True) -> pd.DataFrame:
    """The synthetic generator's readings with the slow cycle on ``temperature``."""
    from anomaly_api.data.synthetic import generate_sensor_data

    frame = generate_sensor_data(rows, seed=seed)
    if cycle:
        phase = 2.0 * np.pi * np.arange(rows) / CYCLE_PERIOD
        frame["temperature"] += CYCLE_AMPLITUDE * np.sin(phase)
    return frame


def train(directory: Path, window: int) -> None:
    """``anomaly-api generate --seed 42`` then ``anomaly-api train --data ... --window W``."""
    from anomaly_api.data.synthetic import KIND_COLUMN, generate_sensor_data
    from anomaly_api.data.timeseries import timeseries_from_frame
    from anomaly_api.training.time_aware import train_time_aware_and_save
    from bench.quality_time import _user_settings

    frame = generate_sensor_data(seed=42).drop(columns=[KIND_COLUMN])
    ts = timeseries_from_frame(frame, source="train.csv", timestamp_column="timestamp")
    train_time_aware_and_save(ts, directory, _user_settings(window, None, 42))


async def append(
    client: httpx.AsyncClient, stream: str, frame: pd.DataFrame, names: list[str]
) -> list[bool]:
    """Append ``frame``'s readings ``PER_REQUEST`` at a time; the answers' ``is_anomaly``."""
    stamps = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    values = frame[names].to_numpy(np.float64).tolist()
    flags: list[bool] = []
    for i in range(0, len(frame), PER_REQUEST):
        body = {"timestamps": stamps[i : i + PER_REQUEST], "readings": values[i : i + PER_REQUEST]}
        response = await client.post(f"/streams/{stream}/readings", json=body)
        response.raise_for_status()
        flags.extend(answer["is_anomaly"] for answer in response.json()["answers"])
    return flags


async def events(client: httpx.AsyncClient, stream: str) -> list[dict[str, Any]]:
    """Every event the stream keeps, oldest first."""
    found: list[dict[str, Any]] = []
    before: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"before": before} if before else {})}
        page = (await client.get(f"/streams/{stream}/events", params=params)).json()
        found.extend(page["events"])
        before = page["next_before"]
        if before is None:
            return found[::-1]


def span(event: dict[str, Any]) -> tuple[int, int]:
    """An event's readings ``[first, last anomaly]`` as stream reading numbers."""
    return event["first_reading"], event["first_reading"] + event["readings"] - 1


def count(
    found: list[dict[str, Any]], flags: list[bool], truth: NDArray[np.int64], first: int
) -> dict[str, Any]:
    """The events and readings from reading ``first`` on, against the truth."""
    kept = [e for e in found if e["first_reading"] >= first]
    real = [bool(truth[a : b + 1].any()) for a, b in map(span, kept)]
    starts = np.flatnonzero(np.diff(np.r_[0, truth[first:]]) == 1) + first
    ends = np.flatnonzero(np.diff(np.r_[truth[first:], 0]) == -1) + first
    hit = [
        [e for e in kept if span(e)[0] <= end and span(e)[1] >= start]
        for start, end in zip(starts, ends, strict=True)
    ]
    answered = np.asarray(flags[first:], dtype=bool)
    normal = truth[first:] == 0
    return {
        "false_anomaly_rate": float(answered[normal].mean()),
        "anomaly_recall": float(answered[~normal].mean()),
        "events": len(kept),
        "false_alarms": real.count(False),
        "true_events": real.count(True),
        "segments": len(starts),
        "segments_found": sum(map(bool, hit)),
        "found": {
            int(s): [t["feature"] for t in h[0]["top_sensors"]]
            for s, h in zip(starts, hit, strict=True)
            if h
        },
    }


async def one_seed(settings: Any, seed: int, rows: int) -> dict[str, Any]:
    """Three streams of one live seed: left alone, labelled after its first half, no cycle."""
    import httpx
    from asgi_lifespan import LifespanManager

    from anomaly_api.api.app import create_app

    frame = live_stream(seed, rows)
    truth = frame["is_anomaly"].to_numpy(np.int64)
    half = rows // 2
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=120, shutdown_timeout=60) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://bench"
        ) as client,
    ):
        names = (await client.get("/model/info")).json()["feature_names"]
        alone = await append(client, "alone", frame, names)
        clean_flags = await append(client, "clean", live_stream(seed, rows, cycle=False), names)
        flags = await append(client, "labelled", frame.iloc[:half], names)
        labels = {"false_alarm": 0, "confirmed": 0}
        for event in await events(client, "labelled"):
            a, b = span(event)
            label = "confirmed" if truth[a : b + 1].any() else "false_alarm"
            labels[label] += 1
            response = await client.post(
                f"/streams/labelled/events/{event['id']}/feedback", json={"label": label}
            )
            response.raise_for_status()
        adaptation = (await client.get("/streams/labelled")).json()["adaptation"]
        flags += await append(client, "labelled", frame.iloc[half:], names)
        before = count(await events(client, "alone"), alone, truth, half)
        after = count(await events(client, "labelled"), flags, truth, half)
        clean = count(await events(client, "clean"), clean_flags, truth, half)
    lost = sorted(set(before["found"]) - set(after["found"]))
    kinds = frame["anomaly_kind"].to_numpy()
    return {
        "first_half_labels": labels,
        "adaptation_after_labels": adaptation,
        "before": _counts(before),
        "after": _counts(after),
        "without_cycle": _counts(clean),
        "segments_found_without_cycle": {  # what the model finds on its own, kept or not
            "found": len(clean["found"]),
            "before": len(set(clean["found"]) & set(before["found"])),
            "after": len(set(clean["found"]) & set(after["found"])),
        },
        "lost_segments": [
            {
                "reading": i,
                "kind": str(kinds[i]),
                "still_flagged": bool(flags[i]),
                "event_sensors_before": before["found"][i],
                "found_without_cycle": i in clean["found"],
                "event_sensors_without_cycle": clean["found"].get(i),
            }
            for i in lost
        ],
        "gained_segments": sorted(set(after["found"]) - set(before["found"])),
    }


def _counts(counted: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in counted.items() if k != "found"}


def _sum(rows: list[dict[str, Any]], summed: tuple[str, ...], meaned: tuple[str, ...] = ()) -> Any:
    """Each ``summed`` key's sum over ``rows`` and each ``meaned`` key's mean."""
    means = {k: float(np.mean([r[k] for r in rows])) for k in meaned}
    return {k: sum(r[k] for r in rows) for k in summed} | means


def run(ctx: Context) -> dict[str, Any]:
    """Part ``quality.feedback``. ``--set``: ``seeds`` (7-11), ``rows`` (20000), ``memory``
    (``ANOMALY_STREAM_ADAPTATION_MEMORY``, 200; 1000000: only feedback acts), ``window``."""
    from anomaly_api.config import Settings

    seeds = [int(s) for s in ctx.option("seeds", ctx.size("7", "7,8,9,10,11")).split(",")]
    rows = ctx.option("rows", ctx.size(4000, 20000))
    memory = ctx.option("memory", 200.0)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        train(Path(tmp), ctx.option("window", 30))
        settings = Settings(
            artifacts_dir=Path(tmp),
            redis_url=None,
            stream_adaptation_memory=memory,
            stream_max_readings=PER_REQUEST,
            stream_max_events=1000,
        )
        for seed in seeds:
            out[str(seed)] = asyncio.run(one_seed(settings, seed, rows))
    runs = list(out.values())
    counted = ("events", "false_alarms", "true_events", "segments", "segments_found")
    total = {
        side: _sum([r[side] for r in runs], counted, ("false_anomaly_rate", "anomaly_recall"))
        for side in ("before", "after", "without_cycle")
    }
    found = [r["segments_found_without_cycle"] for r in runs]
    total["segments_found_without_cycle"] = _sum(found, ("found", "before", "after"))
    lost = [s for r in runs for s in r["lost_segments"]]
    total["lost"] = {"segments": len(lost)} | _sum(lost, ("still_flagged", "found_without_cycle"))
    return {"quality": {"feedback": {"memory": memory, "rows": rows, "total": total, "seeds": out}}}
