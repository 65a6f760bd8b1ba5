"""JSON in and out, and answers into results: the service's JSON answers, the compact
tensor form of a batch's answers, and error bodies.

The tensor form (media type ``TENSORS``) is an Open Inference Protocol v2
``$inference_response``: one output per answer field, each a flat column of the batch
(``contributions``: ``[rows, n_features]`` row-major, in ``parameters.features`` order),
the batch-wide values in ``parameters``. Decoding it makes a few lists instead of ~14
dicts and lists per row; each ``Prediction``'s ``raw`` is then a view of its row that
builds the JSON form's dict only when read.

orjson is used when installed (it is with the server); the standard library otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from itertools import repeat
from typing import Any, Final

import httpx

from anomaly_api.client._errors import AnomalyApiError
from anomaly_api.client._models import (
    Contribution,
    DetectorVerdict,
    Health,
    Job,
    ModelDetail,
    ModelInfo,
    ModelSummary,
    ModelVersion,
    Prediction,
    StreamAdaptation,
    StreamAnswer,
    StreamFollow,
    StreamReadings,
    StreamState,
    StreamSummary,
    WindowResult,
    contributions_of,
)

try:  # optional speed-up; the client works without it
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised by the import test's subprocess
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "BATCH_ACCEPT",
    "TENSORS",
    "error_from",
    "json_content",
    "parse_batch",
    "parse_health",
    "parse_job",
    "parse_json",
    "parse_model_detail",
    "parse_model_info",
    "parse_model_version",
    "parse_models",
    "parse_prediction",
    "parse_stream_answer",
    "parse_stream_readings",
    "parse_stream_state",
    "parse_tensors",
    "parse_window",
    "read_batch",
]

TENSORS: Final = "application/vnd.anomaly-api.tensors+json"
"""Media type of a batch's answers as tensors."""
BATCH_ACCEPT: Final = f"{TENSORS}, application/json;q=0.5"
"""``Accept`` of the batch calls: the tensor form, else the JSON form (older servers)."""


def json_content(body: Any) -> bytes:
    """Compact JSON bytes. NaN and infinity are refused here (stdlib) or sent as ``null``
    (orjson), which the server refuses with a 422 naming the observation. numpy floats
    (a row of a numpy array) are written as numbers by both."""
    if _orjson is not None:
        return _orjson.dumps(body, option=_orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def parse_json(response: httpx.Response) -> Any:
    """The response body as JSON."""
    if _orjson is not None:
        return _orjson.loads(response.content)
    return json.loads(response.content)


def media_type(response: httpx.Response) -> str:
    """The response's media type, lower case, without parameters."""
    value: str = response.headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


# --------------------------------------------------------------------------- predictions


def parse_prediction(data: Mapping[str, Any]) -> Prediction:
    """A ``Prediction`` from one answer of ``/predict`` or ``/predict/batch``."""
    return Prediction(
        str(data["observation_id"]),
        bool(data["is_anomaly"]),
        float(data["anomaly_score"]),
        float(data["confidence"]),
        str(data["model_version"]),
        bool(data.get("cached", False)),
        float(data.get("inference_ms", 0.0)),
        data,
        float(data.get("severity", 0.0)),
    )


def parse_batch(data: Mapping[str, Any]) -> list[Prediction]:
    """The ``Prediction`` of each observation of a ``/predict/batch`` JSON answer, in order."""
    return [parse_prediction(item) for item in data["predictions"]]


def read_batch(response: httpx.Response, top_k: int | None = None) -> list[Prediction]:
    """The ``Prediction``s of a ``/predict/batch`` response, in either form (``top_k``:
    the contributions kept per answer, as the JSON form lists them)."""
    data = parse_json(response)
    if media_type(response) == TENSORS:
        return parse_tensors(data, top_k)
    return parse_batch(data)


_KNOWN_OUTPUTS: Final = frozenset(
    {
        "observation_id",
        "is_anomaly",
        "anomaly_score",
        "confidence",
        "severity",
        "cached",
        "contributions",
    }
)


class _TensorBatch:
    """The columns of a tensor answer and what each row's JSON form needs."""

    def __init__(self, data: Mapping[str, Any], top_k: int | None) -> None:
        params = data.get("parameters") or {}
        self.columns: dict[str, list[Any]] = {
            str(out["name"]): _flat(out["data"]) for out in data["outputs"]
        }
        self.features: list[str] = [str(name) for name in params.get("features", ())]
        self.thresholds: dict[str, float] = {
            str(k): float(v) for k, v in (params.get("thresholds") or {}).items()
        }
        self.model_version = str(data["model_version"])
        self.inference_ms = float(params.get("inference_ms", 0.0))
        n_features = len(self.features)
        self.k = n_features if top_k is None else max(0, min(top_k, n_features))
        detector_columns = {f"{d}_score" for d in self.thresholds} | {
            f"{d}_vote" for d in self.thresholds
        }
        self.others = [
            name
            for name in self.columns
            if name not in _KNOWN_OUTPUTS and name not in detector_columns
        ]

    def order(self, i: int) -> tuple[list[float], list[int]]:
        """Row ``i``'s shares, and the features kept, largest share first (ties in feature
        order, as the JSON form sorts them)."""
        n_features = len(self.features)
        shares = self.columns["contributions"][i * n_features : (i + 1) * n_features]
        return shares, sorted(range(n_features), key=shares.__getitem__, reverse=True)[: self.k]

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as the JSON form writes it (keys in its order, then unknown outputs)."""
        cols = self.columns
        shares, order = self.order(i)
        features = self.features
        row: dict[str, Any] = {
            "observation_id": cols["observation_id"][i],
            "is_anomaly": cols["is_anomaly"][i],
            "anomaly_score": cols["anomaly_score"][i],
            "confidence": cols["confidence"][i],
            "severity": cols["severity"][i],
            "contributions": [
                {"feature": features[j], "share": shares[j], "why": None} for j in order
            ],
            "model_version": self.model_version,
            "inference_ms": self.inference_ms,
            "detectors": {
                name: {
                    "score": cols[f"{name}_score"][i],
                    "threshold": threshold,
                    "vote": cols[f"{name}_vote"][i],
                }
                for name, threshold in self.thresholds.items()
            },
            "cached": cols["cached"][i],
        }
        for name in self.others:
            row[name] = cols[name][i]
        return row

    def contributions(self, i: int) -> tuple[Contribution, ...]:
        """Row ``i``'s ``Prediction.contributions``, from the columns."""
        shares, order = self.order(i)
        features = self.features
        return tuple(Contribution(features[j], float(shares[j]), None) for j in order)

    def detectors(self, i: int) -> dict[str, DetectorVerdict]:
        """Row ``i``'s ``Prediction.detectors``, from the columns."""
        cols = self.columns
        return {
            name: DetectorVerdict(
                float(cols[f"{name}_score"][i]), threshold, bool(cols[f"{name}_vote"][i])
            )
            for name, threshold in self.thresholds.items()
        }


class _TensorRow(Mapping[str, Any]):
    """One row of a tensor answer read as the JSON form's dict (built on first read)."""

    __slots__ = ("_batch", "_i", "_row")

    def __init__(self, batch: _TensorBatch, i: int) -> None:
        self._batch = batch
        self._i = i
        self._row: dict[str, Any] | None = None

    def _data(self) -> dict[str, Any]:
        if self._row is None:
            self._row = self._batch.row(self._i)
        return self._row

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def build_contributions(self) -> tuple[Contribution, ...]:
        """``Prediction.contributions`` without the JSON form's dicts."""
        return self._batch.contributions(self._i)

    def build_detectors(self) -> dict[str, DetectorVerdict]:
        """``Prediction.detectors`` without the JSON form's dicts."""
        return self._batch.detectors(self._i)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __repr__(self) -> str:
        return repr(self._data())


def _flat(data: Sequence[Any]) -> list[Any]:
    """A tensor's ``data``, flat (the protocol allows nested row-major lists too)."""
    if data and isinstance(data[0], list):
        return [value for row in data for value in _flat(row)]
    return list(data)


def parse_tensors(data: Mapping[str, Any], top_k: int | None = None) -> list[Prediction]:
    """The ``Prediction``s of a batch answered in the tensor form (see the module's doc),
    equal to those of the same answers in the JSON form."""
    batch = _TensorBatch(data, top_k)
    cols = batch.columns
    ids = cols["observation_id"]
    return list(
        map(
            Prediction,
            map(str, ids),
            map(bool, cols["is_anomaly"]),
            map(float, cols["anomaly_score"]),
            map(float, cols["confidence"]),
            repeat(batch.model_version),
            map(bool, cols["cached"]),
            repeat(batch.inference_ms),
            [_TensorRow(batch, i) for i in range(len(ids))],
            map(float, cols["severity"]),
        )
    )


# --------------------------------------------------------------------------- other answers


def parse_health(data: Mapping[str, Any]) -> Health:
    """A ``Health`` from ``/health``."""
    cache = data.get("cache") or {}
    streams = data.get("streams") or {}
    revisions = data.get("revisions") or {}
    return Health(
        status=str(data["status"]),
        model_loaded=bool(data["model_loaded"]),
        model_version=data.get("model_version"),
        cache_backend=cache.get("backend"),
        cache_ok=cache.get("ok"),
        uptime_s=float(data.get("uptime_s", 0.0)),
        raw=data,
        streams_backend=streams.get("backend"),
        streams_ok=streams.get("ok"),
        revisions_channel=revisions.get("channel"),
        revisions_subscribed=revisions.get("subscribed"),
        revisions_unsent_version=revisions.get("unsent_version"),
    )


def parse_model_info(data: Mapping[str, Any]) -> ModelInfo:
    """A ``ModelInfo`` from ``/model/info``."""
    return ModelInfo(
        version=str(data["version"]),
        feature_names=tuple(str(n) for n in data["feature_names"]),
        detector_names=tuple(str(d["name"]) for d in data["detectors"]),
        created_at=str(data.get("created_at", "")),
        inference_backend=data.get("inference_backend"),
        raw=data,
        detectors=tuple(data["detectors"]),
        min_votes=int(data.get("min_votes", 0)),
        vote_rule=str(data.get("vote_rule", "")),
        feature_stats=data.get("feature_stats") or {},
        scaling=data.get("scaling"),
        contributions_method=data.get("contributions"),
        severity_method=data.get("severity"),
        score_definition=str(data.get("score_definition", "")),
        metrics=data.get("metrics"),
        library_versions=data.get("library_versions") or {},
        false_alarm_rate=data.get("false_alarm_rate"),
    )


def parse_stream_answer(data: Mapping[str, Any]) -> StreamAnswer:
    """A ``StreamAnswer`` from one item of a stream answer's ``answers``."""
    return StreamAnswer(
        index=int(data["index"]),
        timestamp=str(data["timestamp"]),
        is_anomaly=bool(data["is_anomaly"]),
        anomaly_score=float(data["anomaly_score"]),
        severity=float(data.get("severity", 0.0)),
        confidence=float(data["confidence"]),
        warming_up=bool(data.get("warming_up", False)),
        contributions=contributions_of(data),
        alarm=bool(data.get("alarm", False)),
        event_id=None if data.get("event_id") is None else str(data["event_id"]),
        raw=data,
    )


def parse_window(data: Mapping[str, Any]) -> WindowResult:
    """A ``WindowResult`` from ``/predict/window``."""
    return WindowResult(
        answers=tuple(parse_stream_answer(a) for a in data["answers"]),
        n_anomalies=int(data["n_anomalies"]),
        model_version=str(data["model_version"]),
        model_kind=str(data["model_kind"]),
        window=int(data["window"]),
        inference_ms=float(data.get("inference_ms", 0.0)),
        raw=data,
    )


def parse_stream_readings(data: Mapping[str, Any]) -> StreamReadings:
    """A ``StreamReadings`` from ``/streams/{stream_id}/readings``."""
    summary = data["stream"]
    return StreamReadings(
        stream_id=str(data["stream_id"]),
        answers=tuple(parse_stream_answer(a) for a in data["answers"]),
        n_anomalies=int(data["n_anomalies"]),
        model_version=str(data["model_version"]),
        model_kind=str(data["model_kind"]),
        stream=StreamSummary(
            readings_in_window=int(summary["readings_in_window"]),
            window=int(summary["window"]),
            total=int(summary["total"]),
            warming_up=bool(summary["warming_up"]),
            restarted=bool(summary["restarted"]),
            new_stream=bool(summary.get("new_stream", summary["restarted"])),
            model_changed=bool(summary.get("model_changed", False)),
            backend=str(summary.get("backend", "")),
            degraded=bool(summary.get("degraded", False)),
            alarms=int(summary.get("alarms", 0)),
            raw=summary,
            threshold_raise=_float_or_none(summary.get("threshold_raise")),
        ),
        inference_ms=float(data.get("inference_ms", 0.0)),
        raw=data,
    )


def parse_stream_state(data: Mapping[str, Any]) -> StreamState:
    """A ``StreamState`` from ``GET /streams/{stream_id}``."""
    alarm = data.get("alarm") or {}
    return StreamState(
        stream_id=str(data["stream_id"]),
        total=int(data["total"]),
        readings_in_window=int(data["readings_in_window"]),
        n_features=int(data["n_features"]),
        first_timestamp=str(data["first_timestamp"]),
        last_timestamp=str(data["last_timestamp"]),
        model_version=str(data["model_version"]),
        expires_in_s=float(data["expires_in_s"]),
        backend=str(data.get("backend", "")),
        degraded=bool(data.get("degraded", False)),
        alarms=int(alarm.get("alarms", 0)),
        last_alarm_timestamp=alarm.get("last_alarm_timestamp"),
        raw=data,
        readings_evaluated=int(alarm.get("readings_evaluated", 0)),
        last_alarm_reading=alarm.get("last_alarm_reading"),
        alarm_unit=alarm.get("unit"),
        adaptation=None if data.get("adaptation") is None else parse_adaptation(data["adaptation"]),
        follow=None if data.get("follow") is None else parse_follow(data["follow"]),
    )


def parse_follow(data: Mapping[str, Any]) -> StreamFollow:
    """A ``StreamFollow`` from ``GET /streams/{stream_id}``'s ``follow``."""
    return StreamFollow(
        memory=int(data["memory"]),
        level={str(name): float(v) for name, v in data["level"].items()},
        spread={str(name): float(v) for name, v in data["spread"].items()},
    )


def parse_adaptation(data: Mapping[str, Any]) -> StreamAdaptation:
    """A ``StreamAdaptation`` from ``GET /streams/{stream_id}``'s ``adaptation``."""
    level = data.get("level")
    return StreamAdaptation(
        enabled=bool(data["enabled"]),
        level=None if level is None else float(level),
        reference=_float_or_none(data.get("reference")),
        threshold_raise=_float_or_none(data.get("threshold_raise")),
        by_level=_float_or_none(data.get("by_level")),
        by_feedback=_float_or_none(data.get("by_feedback")),
        learned=int(data.get("learned", 0)),
        frozen=int(data.get("frozen", 0)),
        widenings=tuple(
            (
                str(w["event_id"]),
                float(w["amount"]),
                {str(name): float(a) for name, a in w.get("allowances", {}).items()},
            )
            for w in data.get("widenings", ())
        ),
        widening_bounds=tuple(
            {
                str(sensor): {str(kind): float(z) for kind, z in kinds.items()}
                for sensor, kinds in w.get("bounds", {}).items()
            }
            for w in data.get("widenings", ())
        ),
    )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def parse_job(data: Mapping[str, Any]) -> Job:
    """A ``Job`` from ``POST /models/{name}/versions`` or ``GET``/``DELETE /jobs/{job_id}``."""
    return Job(
        job_id=str(data["job_id"]),
        model=str(data["model"]),
        status=str(data["status"]),
        progress=data.get("progress"),
        version=data.get("version"),
        metrics=data.get("metrics"),
        error=data.get("error"),
        created_at=float(data["created_at"]),
        updated_at=float(data["updated_at"]),
        owner=str(data.get("owner", "")),
        raw=data,
    )


def _aliases(data: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (data.get("aliases") or {}).items()}


def _loaded(data: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(v) for v in data.get("loaded_versions") or ())


def parse_models(data: Mapping[str, Any]) -> list[ModelSummary]:
    """The ``ModelSummary`` list of ``GET /models``."""
    return [
        ModelSummary(name=str(m["name"]), aliases=_aliases(m), loaded_versions=_loaded(m), raw=m)
        for m in data["models"]
    ]


def parse_model_version(data: Mapping[str, Any]) -> ModelVersion:
    """One version of ``GET /models/{name}``."""
    f1 = data.get("held_out_f1")
    return ModelVersion(
        version=str(data["version"]),
        created_at=str(data.get("created_at", "")),
        kind=str(data.get("kind", "")),
        features=tuple(str(f) for f in data.get("features") or ()),
        thresholds={str(k): float(v) for k, v in (data.get("thresholds") or {}).items()},
        held_out_f1=None if f1 is None else float(f1),
        parent_version=data.get("parent_version"),
        raw=data,
    )


def parse_model_detail(data: Mapping[str, Any]) -> ModelDetail:
    """A ``ModelDetail`` from ``GET /models/{name}``."""
    features = data.get("features")
    return ModelDetail(
        name=str(data["name"]),
        aliases=_aliases(data),
        production_history=tuple(str(v) for v in data.get("production_history") or ()),
        kind=data.get("kind"),
        features=None if features is None else tuple(str(f) for f in features),
        versions=tuple(parse_model_version(v) for v in data.get("versions") or ()),
        alias_log=tuple(data.get("alias_log") or ()),
        loaded_versions=_loaded(data),
        raw=data,
    )


def error_from(response: httpx.Response) -> AnomalyApiError:
    """The ``AnomalyApiError`` of a non-2xx response, from the API's error body if any."""
    request_id = response.headers.get("x-request-id")
    try:
        body = parse_json(response)
    except ValueError:
        body = None
    info = body.get("error") if isinstance(body, dict) else None
    if isinstance(info, dict):
        return AnomalyApiError(
            response.status_code,
            str(info.get("code", "http_error")),
            str(info.get("message", response.reason_phrase)),
            request_id=info.get("request_id") or request_id,
            details=info.get("details"),
        )
    text = response.text.strip().splitlines()[0] if response.text.strip() else ""
    return AnomalyApiError(
        response.status_code,
        "http_error",
        text or response.reason_phrase,
        request_id=request_id,
    )
