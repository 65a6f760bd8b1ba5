"""The shapes of the service's answers, defined once, and the one code that writes them.

``Answer`` and kin are plain dataclasses (neither frozen nor slotted, which orjson writes
natively and fastest): the HTTP API's response models are generated from them, so the
documented schema and the JSON sent cannot drift apart. ``ColumnarBatchAnswer`` keeps a
call's answers as its arrays and writes the JSON those dataclasses would give, byte for
byte, with no object per row: every route (``/predict``, ``/predict/batch``, the Open
Inference Protocol) answers through it. A new field of ``Answer`` is added to
``_fragments`` too; ``tests/service/test_dataplane.py`` compares both byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

import numpy as np
import orjson
from numpy.typing import NDArray
from pydantic import Field

from anomaly_api.service.prediction_columns import PredictionColumns

__all__ = ["Answer", "BatchAnswer", "ColumnarBatchAnswer", "Contribution", "DetectorVerdict"]


@dataclass
class DetectorVerdict:
    """What one detector of the ensemble said about the reading."""

    score: Annotated[float, Field(description="Its score_samples: lower = more abnormal.")]
    threshold: Annotated[float, Field(description="It votes anomaly when the score is below this.")]
    vote: Annotated[bool, Field(description="True when it votes anomaly.")]


@dataclass
class Contribution:
    """One feature's share of the reading's anomaly."""

    feature: Annotated[str, Field(description="The feature's name (see `/model/info`).")]
    share: Annotated[
        float,
        Field(
            description="Its share of the anomaly, in [0, 1]; the shares of all features "
            "of a reading sum to 1."
        ),
    ]
    why: Annotated[
        str | None,
        Field(
            description="A short reason, for answers that have one (time-aware stream "
            "answers); null for point-wise answers."
        ),
    ] = None


@dataclass
class Answer:
    """The ensemble's answer for one reading."""

    observation_id: str
    is_anomaly: Annotated[
        bool,
        Field(
            description="True when at least `min_votes` of the model's detectors vote "
            "anomaly (see `/model/info`; 2 of the 3 by default)."
        ),
    ]
    anomaly_score: Annotated[
        float, Field(description="Higher = more anomalous; positive = anomaly.")
    ]
    confidence: Annotated[float, Field(description="Confidence in the decision, in [0.5, 1].")]
    severity: Annotated[
        float,
        Field(
            description="How anomalous, in [0, 1): 0 for a normal reading, rising with "
            "`anomaly_score` (a / (1 + a) of its positive part)."
        ),
    ]
    contributions: Annotated[
        list[Contribution],
        Field(
            description="Each feature's share of the anomaly, largest first: every feature, "
            "or the `top_k` largest when the request asks for them."
        ),
    ]
    model_version: str
    inference_ms: Annotated[
        float,
        Field(description="Time spent answering (for a batch item: the whole batch), in ms."),
    ]
    detectors: dict[str, DetectorVerdict]
    cached: Annotated[
        bool, Field(description="True when the answer came from the prediction cache.")
    ]


@dataclass
class BatchAnswer:
    """Answers for a batch, in the order of its observations."""

    predictions: list[Answer]
    n_anomalies: int
    model_version: str
    inference_ms: float


def _as_contiguous(value: object) -> NDArray[np.float64]:
    """orjson's ``default`` for the arrays it does not write itself (strided views: the
    columns of decoded cache entries)."""
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _number_texts(*arrays: NDArray[np.float64]) -> list[bytes]:
    """orjson's text of each value (the same as for a Python float) of the 1-D ``arrays``,
    one array after the other: one ``orjson.dumps`` of them all as nested lists, split at
    its commas, the brackets taken off each array's first and last text (no number's text
    holds a bracket or a comma). No array is empty."""
    nested = orjson.dumps(arrays, default=_as_contiguous, option=orjson.OPT_SERIALIZE_NUMPY)
    texts = nested.split(b",")
    end = 0
    for values in arrays:
        start, end = end, end + len(values)
        texts[start] = texts[start].lstrip(b"[")
        texts[end - 1] = texts[end - 1].rstrip(b"]")
    return texts


def _string_texts(values: Sequence[str]) -> list[bytes]:
    """orjson's text of each string: one call for all of them, split at the commas between
    them (when no string holds a comma of its own), else one call each."""
    if not values:
        return []
    joined = orjson.dumps(values)[1:-1]
    if joined.count(b",") == len(values) - 1:
        return joined.split(b",")
    return [orjson.dumps(value) for value in values]


def _picked(
    table: NDArray[np.object_], index: NDArray[np.intp] | tuple[NDArray[np.intp], ...]
) -> list[bytes]:
    """``table[index]`` as a flat list (row by row): a fragment chosen per value."""
    picked: list[bytes] = table[index].ravel().tolist()
    return picked


def _texts(*fragments: bytes) -> NDArray[np.object_]:
    table = np.empty(len(fragments), dtype=object)
    table[:] = fragments
    return table


_FLAGS = _texts(b',"is_anomaly":false,"anomaly_score":', b',"is_anomaly":true,"anomaly_score":')
_CACHED = _texts(b"false}", b"true}")


@dataclass(frozen=True)
class _ModelFragments:
    """The fragments of every answer that depend only on the model, made once per model."""

    features: NDArray[np.object_]
    """``[lead, name]``: a contribution's opening, ``lead`` 0 for the first, 1 after it."""
    leads: NDArray[np.intp]
    """``lead`` of each contribution by rank: 0, then 1s."""
    detectors: bytes
    """What opens the detectors' object, up to the first one's score."""
    votes: NDArray[np.object_]
    """``[detector, vote]``: the rest of that detector's verdict, up to the next one's score
    (after the last: up to the ``cached`` value)."""
    detector_rows: NDArray[np.intp]


@lru_cache(maxsize=256)
def _model_fragments(
    feature_names: tuple[str, ...], detector_names: tuple[str, ...], thresholds: bytes
) -> _ModelFragments:
    """``thresholds``: their JSON array (floats as keys would take -0.0 for 0.0)."""
    dumps = orjson.dumps
    names = [dumps(name) for name in feature_names]
    detectors = [dumps(name) for name in detector_names]
    n_features, n_detectors = len(names), len(detectors)
    features = np.empty((2, n_features), dtype=object)
    features[0] = [b',"contributions":[{"feature":' + name + b',"share":' for name in names]
    features[1] = [b',"why":null},{"feature":' + name + b',"share":' for name in names]
    votes = np.empty((n_detectors, 2), dtype=object)
    for q, threshold in enumerate(thresholds[1:-1].split(b",")):
        after = b"," + detectors[q + 1] + b':{"score":' if q + 1 < n_detectors else b'},"cached":'
        for vote in (0, 1):
            word = b"true" if vote else b"false"
            votes[q, vote] = b',"threshold":' + threshold + b',"vote":' + word + b"}" + after
    return _ModelFragments(
        features=features,
        leads=(np.arange(n_features) > 0).astype(np.intp),
        detectors=b',"detectors":{' + detectors[0] + b':{"score":',
        votes=votes,
        detector_rows=np.arange(n_detectors),
    )


@dataclass
class ColumnarBatchAnswer:
    """A ``BatchAnswer`` as the batch's arrays; ``to_json`` is its JSON (``answer_json``
    the one ``Answer`` of a one-row call)."""

    predictions: PredictionColumns
    observation_ids: Sequence[str]
    feature_names: Sequence[str]
    detector_names: Sequence[str]
    thresholds: Sequence[float]
    model_version: str
    inference_ms: float
    top_k: int | None
    """Contributions per answer (every feature when None)."""

    @property
    def n_anomalies(self) -> int:
        """How many rows are anomalies."""
        return int(np.count_nonzero(self.predictions.is_anomaly))

    def to_json(self) -> bytes:
        """``orjson.dumps`` of the equivalent ``BatchAnswer``, byte for byte."""
        parts = self._fragments()  # one join, no copy of the body after it
        parts.insert(0, b'{"predictions":[')
        parts.append(
            b'],"n_anomalies":' + orjson.dumps(self.n_anomalies)
            + b',"model_version":' + orjson.dumps(self.model_version)
            + b',"inference_ms":' + orjson.dumps(self.inference_ms) + b"}"
        )  # fmt: skip
        return b"".join(parts)

    def answer_json(self) -> bytes:
        """``orjson.dumps`` of the ``Answer`` of a one-row batch, byte for byte."""
        if len(self.predictions) != 1:
            raise ValueError(f"answer_json needs one row, got {len(self.predictions)}")
        return b"".join(self._fragments())

    def _fragments(self) -> list[bytes]:
        """Every answer's JSON as one flat list of fragments, the answers after the first
        led by a comma.

        Each answer is the same fixed sequence of ``width`` fragments (constants, orjson's
        texts of the numbers, lookups of names and booleans), so fragment ``j`` of every
        answer is one column, placed as one strided slice of the list (``parts[j::width]``;
        a one-row call takes each column's one item). The fragments that depend only on the
        model are made once per model.
        """
        cols = self.predictions
        dumps = orjson.dumps
        model = _model_fragments(
            tuple(self.feature_names), tuple(self.detector_names), dumps(self.thresholds)
        )
        n, n_features, n_detectors = len(cols), len(self.feature_names), len(self.detector_names)
        if not n:
            return []
        k = n_features if self.top_k is None else min(self.top_k, n_features)
        negated = -cols.shares
        order = negated.argsort(axis=1, kind="stable")
        negated.sort(axis=1, kind="stable")  # shares[order], negated (negation is exact)
        if k < n_features:
            order, negated = order[:, :k], negated[:, :k]
        # The arrays' texts one after the other: n each of the first three, then the n * k
        # shares and the n * n_detectors scores, row by row. No out= for the shares: NumPy
        # 2.4 miswrites strided views.
        numbers = _number_texts(
            cols.anomaly_score, cols.confidence, cols.severity, (-negated).ravel(),
            cols.scores.ravel(),
        )  # fmt: skip
        shares, scores = numbers[3 * n : 3 * n + n * k], numbers[3 * n + n * k :]
        led = _picked(model.features, (model.leads[:k], order))
        middle = (
            b',"why":null}],"model_version":' + dumps(self.model_version)
            + b',"inference_ms":' + dumps(self.inference_ms) + model.detectors
        )  # fmt: skip
        said = _picked(model.votes, (model.detector_rows, cols.votes.astype(np.intp)))
        columns: list[Sequence[bytes]] = [  # fragment j of every answer, in the answer's order
            [b',{"observation_id":'] * n, _string_texts(self.observation_ids),
            _picked(_FLAGS, cols.is_anomaly.astype(np.intp)), numbers[0:n],
            [b',"confidence":'] * n, numbers[n : 2 * n], [b',"severity":'] * n,
            numbers[2 * n : 3 * n],
        ]  # fmt: skip
        for j in range(k):
            columns += (led[j::k], shares[j::k])
        columns.append([middle] * n)
        for q in range(n_detectors):
            columns += (scores[q::n_detectors], said[q::n_detectors])
        columns.append(_picked(_CACHED, cols.cached.astype(np.intp)))
        if n == 1:  # one answer: its fragments as they are (a slice assignment costs more)
            parts = [column[0] for column in columns]
        else:
            width = len(columns)
            parts = [b""] * (n * width)
            for j, column in enumerate(columns):
                parts[j::width] = column
        parts[0] = b'{"observation_id":'
        return parts
