"""Every field of every server answer reaches an attribute of the client's result.

Each answer model of the OpenAPI schema (``anomaly_api.api.schemas``: generated from the
service's answer dataclasses, or declared there or by its route) is filled with distinct
sample values, written as the server writes it (``model_dump(mode="json")``), parsed by the
client, and written back from the result's attributes only (never ``raw``). The two must be equal: a
field the server adds and the client drops fails here. The model listings (``GET /models``,
``GET /models/{name}``) have no schema model: ``test_client_jobs`` compares them with a real
server's answers.
"""

from __future__ import annotations

import itertools
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from anomaly_api.api import schemas
from anomaly_api.api.routes.training import JobView
from anomaly_api.client import (
    Contribution,
    Health,
    Job,
    ModelInfo,
    Prediction,
    StreamAdaptation,
    StreamAnswer,
    StreamReadings,
    StreamState,
    StreamSummary,
    WindowResult,
    _parse,
)


def sample(annotation: Any, counter: Iterator[int]) -> Any:
    """A value of ``annotation`` unlike every other one made with ``counter`` (booleans
    are true: every client default is false or None)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return sample(next(a for a in args if a is not type(None)), counter)
    if origin is Literal:
        return args[0]
    if origin is list:
        return [sample(args[0], counter) for _ in range(2)]
    if origin is dict:
        return {f"key{next(counter)}": sample(args[1], counter) for _ in range(2)}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {
            name: sample(field.annotation, counter)
            for name, field in annotation.model_fields.items()
        }
    n = next(counter)
    simple: dict[Any, Callable[[], Any]] = {
        bool: lambda: True,
        int: lambda: n,
        float: lambda: n + 0.5,
        str: lambda: f"text{n}",
        datetime: lambda: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n),
        Any: lambda: {"value": n},
    }
    return simple[annotation]()


def wire(model: type[BaseModel]) -> dict[str, Any]:
    """A sample answer of ``model``, as the server's JSON writes it."""
    data = sample(model, itertools.count(1))
    dumped: dict[str, Any] = model.model_validate(data).model_dump(mode="json")
    return dumped


def contributions(items: Sequence[Contribution]) -> list[dict[str, Any]]:
    return [{"feature": c.feature, "share": c.share, "why": c.why} for c in items]


def prediction(p: Prediction) -> dict[str, Any]:
    return {
        "observation_id": p.observation_id,
        "is_anomaly": p.is_anomaly,
        "anomaly_score": p.anomaly_score,
        "confidence": p.confidence,
        "severity": p.severity,
        "contributions": contributions(p.contributions),
        "model_version": p.model_version,
        "inference_ms": p.inference_ms,
        "detectors": {
            name: {"score": v.score, "threshold": v.threshold, "vote": v.vote}
            for name, v in p.detectors.items()
        },
        "cached": p.cached,
    }


def batch(predictions: list[Prediction]) -> dict[str, Any]:
    """The batch-wide values are each prediction's (the same for all of a batch)."""
    return {
        "predictions": [prediction(p) for p in predictions],
        "n_anomalies": sum(p.is_anomaly for p in predictions),
        "model_version": predictions[0].model_version,
        "inference_ms": predictions[0].inference_ms,
    }


def stream_answer(a: StreamAnswer) -> dict[str, Any]:
    return {
        "index": a.index,
        "timestamp": a.timestamp,
        "is_anomaly": a.is_anomaly,
        "anomaly_score": a.anomaly_score,
        "severity": a.severity,
        "confidence": a.confidence,
        "warming_up": a.warming_up,
        "contributions": contributions(a.contributions),
        "alarm": a.alarm,
        "event_id": a.event_id,
    }


def window(w: WindowResult) -> dict[str, Any]:
    return {
        "answers": [stream_answer(a) for a in w.answers],
        "n_anomalies": w.n_anomalies,
        "model_version": w.model_version,
        "model_kind": w.model_kind,
        "window": w.window,
        "inference_ms": w.inference_ms,
    }


def summary(s: StreamSummary) -> dict[str, Any]:
    return {
        "readings_in_window": s.readings_in_window,
        "window": s.window,
        "total": s.total,
        "warming_up": s.warming_up,
        "restarted": s.restarted,
        "new_stream": s.new_stream,
        "model_changed": s.model_changed,
        "backend": s.backend,
        "degraded": s.degraded,
        "alarms": s.alarms,
        "threshold_raise": s.threshold_raise,
    }


def readings(r: StreamReadings) -> dict[str, Any]:
    return {
        "stream_id": r.stream_id,
        "answers": [stream_answer(a) for a in r.answers],
        "n_anomalies": r.n_anomalies,
        "model_version": r.model_version,
        "model_kind": r.model_kind,
        "stream": summary(r.stream),
        "inference_ms": r.inference_ms,
    }


def state(s: StreamState) -> dict[str, Any]:
    return {
        "stream_id": s.stream_id,
        "total": s.total,
        "readings_in_window": s.readings_in_window,
        "n_features": s.n_features,
        "first_timestamp": s.first_timestamp,
        "last_timestamp": s.last_timestamp,
        "model_version": s.model_version,
        "expires_in_s": s.expires_in_s,
        "backend": s.backend,
        "degraded": s.degraded,
        "alarm": {
            "alarms": s.alarms,
            "readings_evaluated": s.readings_evaluated,
            "last_alarm_reading": s.last_alarm_reading,
            "last_alarm_timestamp": s.last_alarm_timestamp,
            "unit": s.alarm_unit,
        },
        "adaptation": None if s.adaptation is None else adaptation(s.adaptation),
        "follow": None
        if s.follow is None
        else {"memory": s.follow.memory, "level": s.follow.level, "spread": s.follow.spread},
    }


def adaptation(a: StreamAdaptation) -> dict[str, Any]:
    return {
        "enabled": a.enabled,
        "level": a.level,
        "reference": a.reference,
        "threshold_raise": a.threshold_raise,
        "by_level": a.by_level,
        "by_feedback": a.by_feedback,
        "learned": a.learned,
        "frozen": a.frozen,
        "widenings": [
            {"event_id": e, "amount": x, "allowances": per_sensor, "bounds": bounds}
            for (e, x, per_sensor), bounds in zip(a.widenings, a.widening_bounds, strict=True)
        ],
    }


def health(h: Health) -> dict[str, Any]:
    return {
        "status": h.status,
        "model_loaded": h.model_loaded,
        "model_version": h.model_version,
        "cache": {"backend": h.cache_backend, "ok": h.cache_ok},
        "streams": {"backend": h.streams_backend, "ok": h.streams_ok},
        "revisions": {
            "channel": h.revisions_channel,
            "subscribed": h.revisions_subscribed,
            "unsent_version": h.revisions_unsent_version,
        },
        "uptime_s": h.uptime_s,
    }


def model_info(m: ModelInfo) -> dict[str, Any]:
    return {
        "version": m.version,
        "created_at": m.created_at,
        "feature_names": list(m.feature_names),
        "feature_stats": m.feature_stats,
        "detectors": list(m.detectors),
        "min_votes": m.min_votes,
        "vote_rule": m.vote_rule,
        "scaling": m.scaling,
        "contributions": m.contributions_method,
        "severity": m.severity_method,
        "score_definition": m.score_definition,
        "metrics": m.metrics,
        "library_versions": m.library_versions,
        "false_alarm_rate": m.false_alarm_rate,
        "n_features": m.n_features,
        "inference_backend": m.inference_backend,
    }


def job(j: Job) -> dict[str, Any]:
    return {
        "job_id": j.job_id,
        "model": j.model,
        "status": j.status,
        "progress": j.progress,
        "version": j.version,
        "metrics": j.metrics,
        "error": j.error,
        "created_at": j.created_at,
        "updated_at": j.updated_at,
        "owner": j.owner,
    }


def _consistent_batch(data: dict[str, Any]) -> dict[str, Any]:
    """A batch sample whose batch-wide values are its predictions' (as the server's are)."""
    for item in data["predictions"]:
        item.update(model_version=data["model_version"], inference_ms=data["inference_ms"])
    data["n_anomalies"] = sum(item["is_anomaly"] for item in data["predictions"])
    return data


def _consistent_model_info(data: dict[str, Any]) -> dict[str, Any]:
    data["n_features"] = len(data["feature_names"])
    return data


CASES: dict[str, tuple[type[BaseModel], Callable[[Any], Any], Callable[[Any], Any]]] = {
    "POST /predict": (schemas.PredictResponse, _parse.parse_prediction, prediction),
    "POST /predict/batch": (schemas.PredictBatchResponse, _parse.parse_batch, batch),
    "POST /predict/window": (schemas.WindowResponse, _parse.parse_window, window),
    "POST /streams/{id}/readings": (
        schemas.StreamReadingsResponse,
        _parse.parse_stream_readings,
        readings,
    ),
    "GET /streams/{id}": (schemas.StreamStateResponse, _parse.parse_stream_state, state),
    "GET /health": (schemas.HealthResponse, _parse.parse_health, health),
    "GET /model/info": (schemas.ModelInfoResponse, _parse.parse_model_info, model_info),
    "GET /jobs/{job_id}": (JobView, _parse.parse_job, job),
}
ADJUST: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "POST /predict/batch": _consistent_batch,
    "GET /model/info": _consistent_model_info,
}


@pytest.mark.parametrize("route", list(CASES))
def test_every_server_field_reaches_the_clients_result(route: str) -> None:
    model, parse, written_back = CASES[route]
    answer = ADJUST.get(route, lambda d: d)(wire(model))
    result = parse(answer)
    assert written_back(result) == answer


def test_the_samples_leave_no_field_at_a_client_default() -> None:
    """No sample value equals what the client fills in for a missing field, so a field
    the parser forgets cannot pass unnoticed."""
    for model, _, _ in CASES.values():
        for value in _leaves(wire(model)):
            assert value not in (None, False, 0, 0.0, ""), model.__name__


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def test_every_answer_model_of_the_schema_is_covered() -> None:
    """The 200 answers of the JSON routes the client calls are the models above."""
    from anomaly_api.api.app import create_app

    schema = create_app().openapi()
    covered = {model.__name__ for model, _, _ in CASES.values()}
    for route in CASES:
        method, path = route.split(" ")
        path = path.replace("{id}", "{stream_id}")
        ok = schema["paths"][path][method.lower()]["responses"]["200"]
        ref = ok["content"]["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[-1] in covered, route
