"""``AnomalyClient``: the blocking client (a driver of the exchanges in ``_transport``)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import httpx

from anomaly_api.client import _client, _frame, _parse
from anomaly_api.client._client import Call, ClientBase
from anomaly_api.client._models import (
    FeatureRow,
    Health,
    Job,
    ModelDetail,
    ModelInfo,
    ModelSummary,
    Prediction,
    StreamReadings,
    StreamState,
    Timestamp,
    WindowResult,
)
from anomaly_api.client._transport import (
    NO_RETRY,
    ClientConfig,
    Exchange,
    Outcome,
    RetryPolicy,
    Send,
)

T = TypeVar("T")


class AnomalyClient(ClientBase):
    """Blocking client of the anomaly-api HTTP service.

    Every scoring and stream call takes ``model=``: a named model (``/models/{model}/...``;
    the service's ``default`` model when omitted).

    Parameters
    ----------
    base_url : str
        The service, e.g. ``http://127.0.0.1:8000``.
    api_key : str, optional
        Sent as ``X-API-Key``.
    timeout_s, connect_timeout_s : float
        Per-request timeout, and the part of it allowed for connecting.
    retry : RetryPolicy
        Backoff on connection errors, 429 and 503 (``RetryPolicy(max_attempts=1)``: none).
    max_batch_rows : int
        Rows per ``/predict/batch`` call in ``predict_many`` (the server's cap, 1,000 by default).
    max_concurrency : int
        Batch calls in flight at once in ``predict_many``.
    transport : httpx.BaseTransport, optional
        For tests (``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        retry: RetryPolicy | None = None,
        max_batch_rows: int = 1000,
        max_concurrency: int = 4,
        seed: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        config = ClientConfig(
            base_url,
            api_key,
            timeout_s,
            connect_timeout_s,
            retry or RetryPolicy(),
            max_batch_rows,
            max_concurrency,
            seed,
        )
        super().__init__(config)
        self._http: httpx.Client = httpx.Client(**self._http_options(), transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def _run(self, exchange: Exchange) -> httpx.Response:
        action = next(exchange)
        while True:
            outcome: Outcome = None
            if isinstance(action, Send):
                try:
                    outcome = self._http.send(action.request)
                    outcome.read()
                except httpx.TransportError as exc:
                    outcome = exc
            else:
                time.sleep(action.seconds)
            try:
                action = exchange.send(outcome)
            except StopIteration as done:
                response: httpx.Response = done.value
                return response

    def _call(self, method: str, path: str, body: Any = None, **options: Any) -> httpx.Response:
        return self._run(self._exchange(method, path, body, options))

    def health(self) -> Health:
        """``GET /health``; a 503 (no model loaded) is an answer here, not an error."""
        response = self._call("GET", "/health", policy=NO_RETRY, accept_statuses=frozenset({503}))
        return _parse.parse_health(_parse.parse_json(response))

    def model_info(self, *, refresh: bool = False) -> ModelInfo:
        """``GET /model/info`` (remembered; ``refresh=True`` asks again)."""
        if self._model_info is None or refresh:
            self._model_info = _parse.parse_model_info(
                _parse.parse_json(self._call("GET", "/model/info"))
            )
        return self._model_info

    def predict(
        self,
        row: FeatureRow,
        *,
        observation_id: str | None = None,
        top_k: int | None = None,
        model: str | None = None,
    ) -> Prediction:
        """Score one reading (``POST /predict``); ``top_k``: only the largest contributions."""
        body = _client.observation(row, observation_id, top_k)
        return _parse.parse_prediction(
            _parse.parse_json(self._call("POST", _client.model_path(model, "/predict"), body))
        )

    def predict_batch(
        self, rows: Sequence[FeatureRow], *, top_k: int | None = None, model: str | None = None
    ) -> list[Prediction]:
        """Score at most ``max_batch_rows`` readings in one ``POST /predict/batch`` (the
        answers asked for as tensors, JSON accepted)."""
        content = _client.batch_content(rows, top_k)
        response = self._call(
            "POST", _client.model_path(model, "/predict/batch"), content, accept=_parse.BATCH_ACCEPT
        )
        return _parse.read_batch(response, top_k)

    def predict_many(
        self, rows: Sequence[FeatureRow], *, top_k: int | None = None, model: str | None = None
    ) -> list[Prediction]:
        """Score any number of readings: ``max_batch_rows`` per call, ``max_concurrency``
        calls at once, answers in the order of ``rows``."""
        batches = list(_client.chunked(rows, self.config.max_batch_rows))
        if len(batches) <= 1:
            return self.predict_batch(batches[0], top_k=top_k, model=model) if batches else []
        with ThreadPoolExecutor(max_workers=self.config.max_concurrency) as pool:
            answers = pool.map(partial(self.predict_batch, top_k=top_k, model=model), batches)
            return [prediction for batch in answers for prediction in batch]

    def score_frame(self, frame: Any) -> Any:
        """A pandas DataFrame with the answer's columns added (features found by name):
        ``answer_columns(detector_names)``, then ``severity``, ``top_feature``, ``top_share``."""
        info = self.model_info()
        rows = _frame.frame_rows(frame, info.feature_names)
        predictions = self.predict_many(rows, top_k=1)
        return _frame.scored_frame(frame, info.detector_names, predictions)

    def _perform(self, call: Call[T]) -> T:
        return call.parse(
            self._run(
                self._exchange(
                    call.method, call.path, call.body, {"content_type": call.content_type}
                )
            )
        )

    def predict_window(
        self,
        timestamps: Sequence[Timestamp],
        readings: Sequence[FeatureRow],
        *,
        mode: Literal["last", "all"] = "last",
        top_k: int | None = None,
        alarm_policy: Mapping[str, Any] | None = None,
        model: str | None = None,
    ) -> WindowResult:
        """Score the last readings of one stream, without server state (``POST
        /predict/window``): the newest reading (``mode="last"``) or every one (``"all"``).

        ``timestamps``: aware ``datetime``s, ISO strings or epoch seconds, one per reading,
        strictly increasing (a naive ``datetime`` raises ``ValueError``). ``alarm_policy``:
        ``{"k", "window", "cooldown", "unit"}`` for this request's ``alarm`` answers."""
        return self._perform(
            self._window_call(timestamps, readings, mode, top_k, alarm_policy, model=model)
        )

    def send_readings(
        self,
        stream_id: str,
        timestamps: Sequence[Timestamp],
        readings: Sequence[FeatureRow],
        *,
        top_k: int | None = None,
        alarm_policy: Mapping[str, Any] | None = None,
        model: str | None = None,
        adapt: bool | None = None,
        follow: bool | None = None,
    ) -> StreamReadings:
        """Append readings to a stream and get one answer each (``POST
        /streams/{stream_id}/readings``). A timestamp not after the stream's last one
        raises ``AnomalyApiError`` with code ``stream_order`` (409, not retried);
        ``alarm_policy`` as for ``predict_window`` (the server's ``alarm_*`` otherwise);
        ``adapt`` switches the stream's adaptive threshold on or off for these readings (the
        server's ``stream_adaptation`` otherwise); ``follow=False`` judges them against the
        model's training level and spread and leaves the stream's followed state as it is
        (a model trained with a follow memory)."""
        return self._perform(
            self._readings_call(
                stream_id,
                timestamps,
                readings,
                top_k,
                alarm_policy,
                model=model,
                adapt=adapt,
                follow=follow,
            )
        )

    def stream_state(self, stream_id: str, *, model: str | None = None) -> StreamState:
        """A live stream's state (``GET /streams/{stream_id}``); 404 ``stream_not_found``
        raises ``AnomalyApiError``."""
        return self._perform(self._state_call(stream_id, model))

    def reset_stream(self, stream_id: str, *, model: str | None = None) -> None:
        """Forget a stream's window (``DELETE /streams/{stream_id}``)."""
        self._perform(self._reset_call(stream_id, model))

    def models(self) -> list[ModelSummary]:
        """Every registered model (``GET /models``): aliases and the versions loaded now."""
        return self._perform(self._models_call())

    def model(self, name: str) -> ModelDetail:
        """A named model (``GET /models/{name}``): versions, aliases, kind, features,
        thresholds; 404 ``model_not_found`` raises ``AnomalyApiError``."""
        return self._perform(self._model_call(name))

    def train(
        self,
        model: str,
        *,
        data: str | os.PathLike[str] | bytes | None = None,
        path_on_server: str | None = None,
        synthetic: bool = False,
        **options: Any,
    ) -> Job:
        """Queue a job training a new version of ``model`` (``POST /models/{model}/versions``,
        admin key) and return it at once; follow it with ``wait_for_job``.

        The data, exactly one of: ``data`` (a local CSV/Parquet file or its bytes,
        uploaded), ``path_on_server`` (a file under the server's training data directory),
        ``synthetic=True`` (the synthetic sensor data). ``options``: those of ``anomaly-api
        train`` (``window=``, ``target_fpr=``, ``detectors=[...]``, ``seed=``, ...)."""
        return self._perform(self._train_call(model, data, path_on_server, synthetic, options))

    def job(self, job_id: str) -> Job:
        """A training job's state (``GET /jobs/{job_id}``)."""
        return self._perform(self._job_call(job_id))

    def cancel_job(self, job_id: str) -> Job:
        """Cancel a queued or running job (``DELETE /jobs/{job_id}``); a finished one
        stays as it is. The answer may still say ``running`` until its worker stopped."""
        return self._perform(self._job_call(job_id, "DELETE"))

    def wait_for_job(self, job_id: str, timeout: float = 600.0, poll: float = 1.0) -> Job:
        """Ask for the job every ``poll`` seconds until it finished (succeeded, failed or
        cancelled: check ``status``); ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job.finished:
                return job
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
            time.sleep(poll)
