"""Python client of the anomaly-api HTTP service: ``AnomalyClient`` and ``AsyncAnomalyClient``.

Needs only httpx and the standard library (pandas for ``score_frame``, imported then)::

    from anomaly_api.client import AnomalyClient

    with AnomalyClient("http://127.0.0.1:8000", api_key="...") as client:
        print(client.predict([0.5, 1.2, -0.3, 0.8, 1.5, 0.2, -0.1, 0.9]).is_anomaly)

Exceptions::

    AnomalyApiError         the server answered an error (status_code, code, message, request_id)
    AnomalyConnectionError  the server could not be reached, after the retries

Modules: ``_models`` (result types), ``_parse`` (JSON and tensor answers into results),
``_transport`` (settings, retries, the sans-I/O exchange), ``_errors``, ``_client`` (request
bodies and what both clients share), ``_frame`` (table columns, pandas), ``_sync`` and
``_async`` (the two drivers).
"""

from anomaly_api.client._async import AsyncAnomalyClient
from anomaly_api.client._errors import AnomalyApiError, AnomalyConnectionError
from anomaly_api.client._frame import answer_columns
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
)
from anomaly_api.client._sync import AnomalyClient
from anomaly_api.client._transport import RetryPolicy

__all__ = [
    "AnomalyApiError",
    "AnomalyClient",
    "AnomalyConnectionError",
    "AsyncAnomalyClient",
    "Contribution",
    "DetectorVerdict",
    "Health",
    "Job",
    "ModelDetail",
    "ModelInfo",
    "ModelSummary",
    "ModelVersion",
    "Prediction",
    "RetryPolicy",
    "StreamAdaptation",
    "StreamAnswer",
    "StreamFollow",
    "StreamReadings",
    "StreamState",
    "StreamSummary",
    "WindowResult",
    "answer_columns",
]
