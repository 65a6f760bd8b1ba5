"""The Open Inference Protocol (KServe v2) mapping, free of FastAPI: tensors in, tensors out.

``parse_infer_request`` turns a parsed ``$inference_request`` into rows for ``DataPlane``;
``infer_response`` writes the ``ColumnarBatchAnswer``'s columns as output tensors (also the
body of ``POST /predict/batch`` negotiated as ``TENSORS_MEDIA_TYPE``). Both are plain
functions, tested without a server. Every problem is an
``OipError`` carrying its HTTP status (400 for a bad tensor, 413 for too many rows); the
router renders it as the protocol's ``{"error": "..."}`` body.

Inputs (either form, ``data`` flat or nested, row-major):

* one tensor of shape ``[rows, n_features]`` (named ``features`` in the metadata; any name
  that is not a feature's is accepted), or
* one tensor per feature, named as in ``/model/info``, each of shape ``[rows]`` or
  ``[rows, 1]`` (MLServer's ``pd`` codec style).

Datatypes: FP32 and FP64, and the integer types (INT8..INT64, UINT8..UINT64), all read as
float64. FP32 values are rounded to single precision first, as the tensor declares them.
BOOL, BYTES and FP16 are refused (400).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from anomaly_api.api.errors import ApiError
from anomaly_api.api.schemas import MAX_ABS_FEATURE
from anomaly_api.service.answers import ColumnarBatchAnswer

__all__ = [
    "ANSWER_OUTPUTS",
    "MATRIX_INPUT",
    "TENSORS_MEDIA_TYPE",
    "InferRequest",
    "OipError",
    "infer_response",
    "model_metadata",
    "output_names",
    "parse_infer_request",
    "tensor_output_names",
    "tensors_response",
]

TENSORS_MEDIA_TYPE = "application/vnd.anomaly-api.tensors+json"
"""The media type of a batch answer as an ``$inference_response`` (``tensors_response``)."""

MATRIX_INPUT = "features"
"""Name of the ``[rows, n_features]`` input in the model metadata."""

_FLOAT_TYPES = {"FP32": np.float32, "FP64": np.float64}
_INT_RANGES = {
    f"{kind}{bits}": (
        (0, 2**bits - 1) if kind == "UINT" else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    )
    for kind in ("INT", "UINT")
    for bits in (8, 16, 32, 64)
}
ACCEPTED_DATATYPES = (*_FLOAT_TYPES, *_INT_RANGES)


class OipError(ApiError):
    """A request the protocol answers with ``status`` and ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message, status=status)


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A validated inference request: the rows and what to answer."""

    id: str | None
    X: NDArray[np.float64]
    """The rows, shape ``(rows, n_features)``, in the model's feature order."""
    outputs: tuple[str, ...]
    """Requested output names, in the order asked (all outputs when none were asked)."""


# --- outputs: the one place answers become tensors ------------------------------------


ANSWER_OUTPUTS = (
    "is_anomaly",
    "anomaly_score",
    "confidence",
    "severity",
)
"""Outputs read straight from the answer's columns of the same name (BOOL or FP64)."""
_SCORE_SUFFIX = "_score"
_VOTE_SUFFIX = "_vote"
_BOOL_OUTPUTS = frozenset({"is_anomaly", "cached"})


def output_names(detector_names: Sequence[str]) -> tuple[str, ...]:
    """The outputs answered when none are requested, in the metadata's order."""
    return (*ANSWER_OUTPUTS, *(f"{name}{_SCORE_SUFFIX}" for name in detector_names))


def tensor_output_names(detector_names: Sequence[str]) -> tuple[str, ...]:
    """Every output the model can produce: the whole answer, in the tensors form's order
    (a request may ask for any of them by name)."""
    per_detector = (
        f"{name}{suffix}" for name in detector_names for suffix in (_SCORE_SUFFIX, _VOTE_SUFFIX)
    )
    return ("observation_id", *ANSWER_OUTPUTS, "cached", "contributions", *per_detector)


def _datatype(output: str) -> str:
    if output == "observation_id":
        return "BYTES"
    if output in _BOOL_OUTPUTS or output.endswith(_VOTE_SUFFIX):
        return "BOOL"
    return "FP64"


def _tensor(batch: ColumnarBatchAnswer, output: str) -> dict[str, Any]:
    """The tensor of ``output`` (a known output name) for every row of ``batch``."""
    columns = batch.predictions
    rows = len(columns)
    shape = [rows]
    data: Any
    if output == "observation_id":
        data = list(batch.observation_ids)
    elif output == "contributions":
        shape = [rows, len(batch.feature_names)]
        data = np.ascontiguousarray(columns.shares).ravel()
    elif output in ANSWER_OUTPUTS or output == "cached":
        data = np.ascontiguousarray(getattr(columns, output))  # orjson writes C order only
    else:
        detector, _, what = output.rpartition("_")
        matrix = columns.scores if what == "score" else columns.votes
        data = np.ascontiguousarray(matrix[:, batch.detector_names.index(detector)])
    return {"name": output, "datatype": _datatype(output), "shape": shape, "data": data}


def infer_response(
    batch: ColumnarBatchAnswer,
    model_name: str,
    request_id: str | None,
    outputs: Sequence[str],
    parameters: Mapping[str, Any] | None = None,
) -> bytes:
    """The ``$inference_response`` for ``batch`` as JSON: one tensor per output (NumPy
    arrays written by orjson, the same texts as the JSON answer's numbers)."""
    body: dict[str, Any] = {
        "model_name": model_name,
        "model_version": batch.model_version,
        "outputs": [_tensor(batch, name) for name in outputs],
    }
    if request_id is not None:
        body["id"] = request_id
    if parameters is not None:
        body["parameters"] = parameters
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def tensors_response(batch: ColumnarBatchAnswer, model_name: str, request_id: str | None) -> bytes:
    """The whole answer as an ``$inference_response`` (the ``TENSORS_MEDIA_TYPE`` body):
    every output, and what the JSON answer holds outside its rows in ``parameters``."""
    parameters = {
        "inference_ms": batch.inference_ms,
        "n_anomalies": batch.n_anomalies,
        "features": list(batch.feature_names),
        "thresholds": dict(zip(batch.detector_names, batch.thresholds, strict=True)),
    }
    outputs = tensor_output_names(batch.detector_names)
    return infer_response(batch, model_name, request_id, outputs, parameters)


def model_metadata(
    model_name: str,
    version: str,
    feature_names: Sequence[str],
    detector_names: Sequence[str],
) -> dict[str, Any]:
    """The ``$metadata_model_response``: both input forms and every output."""
    n = len(feature_names)
    inputs = [{"name": MATRIX_INPUT, "datatype": "FP64", "shape": [-1, n]}]
    inputs += [{"name": name, "datatype": "FP64", "shape": [-1]} for name in feature_names]
    return {
        "name": model_name,
        "versions": [version],
        "platform": "anomaly-api/sklearn-ensemble",
        "inputs": inputs,
        "outputs": [
            {"name": name, "datatype": _datatype(name), "shape": [-1]}
            for name in output_names(detector_names)
        ],
    }


# --- inputs ------------------------------------------------------------------------------


def _flatten(data: Any, name: str) -> list[Any]:
    """Row-major values of nested lists (any nesting; the shape is checked by count)."""
    if not isinstance(data, list):
        raise OipError(f"input {name!r}: 'data' must be a JSON array")
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _shape(value: Any, name: str) -> list[int]:
    if not isinstance(value, list) or not all(type(dim) is int and dim >= 0 for dim in value):
        raise OipError(f"input {name!r}: 'shape' must be a list of non-negative integers")
    return value


def _values(tensor: Mapping[str, Any], expected: int) -> NDArray[np.float64]:
    """The tensor's ``data`` as float64, checked against its datatype and element count."""
    name = tensor["name"]
    datatype = tensor.get("datatype")
    if datatype not in ACCEPTED_DATATYPES:
        accepted = ", ".join(ACCEPTED_DATATYPES)
        raise OipError(f"input {name!r}: datatype {datatype!r} is not supported; use {accepted}")
    if "data" not in tensor:
        raise OipError(
            f"input {name!r} has no 'data': the binary tensor extension is not supported"
        )
    flat = _flatten(tensor["data"], name)
    if len(flat) != expected:
        raise OipError(
            f"input {name!r}: shape {tensor['shape']} holds {expected} values, "
            f"'data' has {len(flat)}"
        )
    integral = datatype in _INT_RANGES
    for value in flat:
        kind = type(value)
        if kind is int or (kind is float and not integral):
            continue
        wanted = "integers" if integral else "numbers"
        raise OipError(f"input {name!r}: {datatype} data must be {wanted}, got {value!r}")
    try:
        if integral:
            low, high = _INT_RANGES[datatype]
            if flat and (min(flat) < low or max(flat) > high):
                raise OipError(f"input {name!r}: a value is outside the range of {datatype}")
            array = np.array(flat, dtype=np.float64)
        else:
            with np.errstate(all="ignore"):  # FP32 overflow becomes inf, refused below
                array = np.array(flat, dtype=_FLOAT_TYPES[datatype]).astype(np.float64)
    except OverflowError:  # an integer beyond any double
        array = np.array([math.inf])
    if array.size and not np.all(np.abs(array) <= MAX_ABS_FEATURE):
        raise OipError(
            f"input {name!r}: values must be finite numbers of magnitude at most "
            f"{MAX_ABS_FEATURE:g} (in {datatype})"
        )
    return array


def _tensors(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        raise OipError("the request body must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise OipError("'inputs' must be a non-empty list of tensors")
    names: set[str] = set()
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise OipError(f"inputs[{index}] must be an object with a string 'name'")
        if tensor["name"] in names:
            raise OipError(f"input {tensor['name']!r} is given twice")
        names.add(tensor["name"])
        tensor["shape"] = _shape(tensor.get("shape"), tensor["name"])
    return inputs


def _check_rows(rows: int, max_rows: int) -> None:
    if rows == 0:
        raise OipError("the request holds no rows")
    if rows > max_rows:
        raise OipError(f"a request holds at most {max_rows} rows, got {rows}", status=413)


def _matrix_rows(tensor: dict[str, Any], n_features: int, max_rows: int) -> NDArray[np.float64]:
    shape = tensor["shape"]
    if len(shape) != 2 or shape[1] != n_features:
        raise OipError(f"input {tensor['name']!r}: shape must be [rows, {n_features}], got {shape}")
    _check_rows(shape[0], max_rows)
    return _values(tensor, shape[0] * n_features).reshape(shape[0], n_features)


def _feature_rows(
    tensors: list[dict[str, Any]], feature_names: Sequence[str], max_rows: int
) -> NDArray[np.float64]:
    given = {tensor["name"]: tensor for tensor in tensors}
    unknown = [name for name in given if name not in feature_names]
    if unknown:
        raise OipError(
            f"unknown inputs {unknown}: send one [rows, {len(feature_names)}] tensor or one "
            f"tensor per feature of {list(feature_names)}"
        )
    missing = [name for name in feature_names if name not in given]
    if missing:
        raise OipError(f"missing feature inputs {missing}")
    rows: int | None = None
    for name in feature_names:
        shape = given[name]["shape"]
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise OipError(f"input {name!r}: shape must be [rows] or [rows, 1], got {shape}")
        if rows is None:
            rows = shape[0]
            _check_rows(rows, max_rows)
        elif shape[0] != rows:
            raise OipError(f"input {name!r} has {shape[0]} rows; the other inputs have {rows}")
    assert rows is not None
    columns = [_values(given[name], rows) for name in feature_names]
    return np.column_stack(columns)


def _requested_outputs(
    body: dict[str, Any], default: Sequence[str], known: Sequence[str]
) -> tuple[str, ...]:
    asked = body.get("outputs")
    if asked is None:
        return tuple(default)
    if not isinstance(asked, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in asked
    ):
        raise OipError("'outputs' must be a list of objects with a string 'name'")
    names = tuple(dict.fromkeys(o["name"] for o in asked))
    unknown = [name for name in names if name not in known]
    if unknown:
        raise OipError(f"unknown outputs {unknown}; the model produces {list(known)}")
    return names


def parse_infer_request(
    body: Any,
    feature_names: Sequence[str],
    detector_names: Sequence[str],
    *,
    max_rows: int,
) -> InferRequest:
    """The rows and requested outputs of an ``$inference_request``, or ``OipError``."""
    tensors = _tensors(body)
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise OipError("'id' must be a string")
    outputs = _requested_outputs(
        body, output_names(detector_names), tensor_output_names(detector_names)
    )
    if len(tensors) == 1 and tensors[0]["name"] not in feature_names:
        X = _matrix_rows(tensors[0], len(feature_names), max_rows)
    else:
        X = _feature_rows(tensors, feature_names, max_rows)
    return InferRequest(id=request_id, X=X, outputs=outputs)
