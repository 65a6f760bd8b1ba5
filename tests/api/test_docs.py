"""/docs and /redoc work offline (assets served by the app) and the schema has examples."""

from __future__ import annotations

import re

import httpx
import pytest

from api_testing import ANOMALOUS, NORMAL

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
URL_IN_SCRIPT = re.compile(r"""["'](https?:)?//[^"']+["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_use_only_local_assets(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    assets = ASSET.findall(html)
    assert any(a.endswith(".js") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        fetched = await client.get(asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 0
    assert not URL_IN_SCRIPT.findall(html), f"{page} references an absolute URL"
    assert "fonts.googleapis" not in html


async def test_openapi_documents_the_prediction_bodies(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path, model in (("/predict", "PredictRequest"), ("/predict/batch", "PredictBatchRequest")):
        body = schema["paths"][path]["post"]["requestBody"]
        assert body["required"] is True
        content = body["content"]["application/json"]
        assert content["schema"] == {"$ref": f"#/components/schemas/{model}"}
        assert model in schema["components"]["schemas"]
    single = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    examples = {name: ex["value"] for name, ex in single["examples"].items()}
    assert examples["normal"] == {"features": NORMAL, "observation_id": "sensor_42_t1234"}
    assert examples["anomalous"]["features"] == ANOMALOUS
    responses = schema["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422", "503"} <= set(responses)
    assert schema["paths"]["/health"]["get"]["responses"]["503"]


async def test_openapi_examples_are_accepted(client: httpx.AsyncClient) -> None:
    """Every documented request example really works against the service."""
    schema = (await client.get("/openapi.json")).json()
    for path in ("/predict", "/predict/batch"):
        content = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        for example in content["examples"].values():
            response = await client.post(path, json=example["value"])
            assert response.status_code == 200, (path, response.text)
