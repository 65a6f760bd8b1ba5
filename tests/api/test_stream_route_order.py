"""The served router tries ``/predict``, then ``/streams`` first; the OpenAPI document keeps
the reading order."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from anomaly_api.api.app import create_app
from anomaly_api.api.routes import api_router, docs_router, health, model, predict, streams
from anomaly_api.config import Settings
from api_testing import assert_error, make_settings, serve_app


def _routers(parent: APIRouter) -> list[APIRouter]:
    return [route.original_router for route in parent.routes if hasattr(route, "original_router")]


def test_hot_routers_are_tried_first_and_the_rest_keep_their_order() -> None:
    served, documented = _routers(api_router), _routers(docs_router)
    assert served[:2] == [predict.router, streams.router]
    assert documented[:2] == [health.router, model.router]
    assert documented.index(streams.window_router) < documented.index(predict.router)
    assert documented.index(predict.router) < documented.index(streams.router)
    assert sorted(map(id, served)) == sorted(map(id, documented))
    rest = [r for r in documented if r not in (predict.router, streams.router)]
    assert served[2:] == rest


def test_openapi_document_lists_paths_in_reading_order(settings: Settings) -> None:
    paths = list(create_app(settings).openapi()["paths"])
    assert paths.index("/predict/window") < paths.index("/predict")
    assert paths.index("/predict") < paths.index("/streams/{stream_id}/readings")
    assert paths[0].startswith("/health")


async def test_stream_scoring_routes_answer_503_before_reading_the_body(tmp_path: Path) -> None:
    async with serve_app(make_settings(tmp_path / "empty")) as http:
        for path in ("/streams/s1/readings", "/predict/window"):
            response = await http.post(
                path, content=b"not json", headers={"content-type": "application/json"}
            )
            assert_error(response, 503, "model_not_ready")
