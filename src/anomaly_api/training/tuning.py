"""Move detector thresholds without retraining: objectives and the trade-off table.

Everything here is a pure function over score matrices of shape
(n_samples, n_detectors) (``score_samples`` of each detector, lower = more abnormal; a
detector votes anomaly when its score is *below* its threshold) and the detectors'
names, so it works for any set of detectors and any model that can give its members'
scores.

``ScoreReference`` is what a model version keeps to be retuned later: each detector's
scores on the rows it was fitted on, and on labelled validation rows when there were
labels. ``retune`` applies one ``Objective``:

* ``TargetFPR(fpr)``: the detector's vote flags at most a share ``fpr`` of later normal
  rows, with the order-statistic bound of ``training.calibration`` (every member's
  threshold moves by the same multiple of its scale, as training calibrates) on the
  normal rows kept: labelled-normal validation rows, else the held-out calibration rows,
  else (in-sample, so optimistic) the fitted rows;
* ``Contamination(c)``: each detector flags a share ``c`` of the training rows (the
  ``c``-quantile of its training scores, as the ensemble's own ``fit`` does);
* ``TargetRecall(r)``: each detector flags at least a share ``r`` of the labelled
  anomalies, as few other rows as possible (labels required);
* ``Explicit({name: value})``: set some detectors' thresholds, keep the others;
* ``MarginShift(delta, ...)``: lower every anomaly score by ``delta`` (each threshold
  moves by ``-delta`` times its detector's scale; ``training.feedback`` derives it from
  labelled events).

Bad input raises ``TuningError`` (a ``ValueError``) with a message meant for a 422.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from anomaly_api.training.calibration import Calibration, CalibrationError, calibrate

Decide = Callable[[NDArray[np.float64], NDArray[np.float64]], NDArray[np.bool_]]
"""(scores (n, d), thresholds (d,)) -> the model's anomaly decision per row."""


class TuningError(ValueError):
    """A tuning request that cannot be met; the message says why."""


def _finite_float(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TuningError(f"{what} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise TuningError(f"{what} must be finite, got {number}")
    return number


def _open_unit(value: object, what: str) -> float:
    number = _finite_float(value, what)
    if not 0.0 < number < 1.0:
        raise TuningError(f"{what} must be in (0, 1), got {number:g}")
    return number


def check_scores(
    scores: ArrayLike, detector_names: Sequence[str], what: str = "scores"
) -> NDArray[np.float64]:
    """``scores`` as a finite float matrix with one column per named detector."""
    names = list(detector_names)
    if not names or len(set(names)) != len(names):
        raise TuningError("detector names must be non-empty and distinct")
    try:
        matrix = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TuningError(f"{what} must be numbers: {exc}") from exc
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise TuningError(f"{what} must have shape (n_samples, {len(names)}), got {matrix.shape}")
    if matrix.shape[0] < 2:
        raise TuningError(f"{what} need at least 2 rows, got {matrix.shape[0]}")
    if not np.all(np.isfinite(matrix)):
        raise TuningError(f"{what} contain non-finite values")
    return matrix


def check_labels(y: ArrayLike, n_rows: int) -> NDArray[np.int64]:
    """0/1 labels, one per row, with both classes present."""
    labels = np.asarray(y)
    if labels.shape != (n_rows,):
        raise TuningError(f"labels must have one value per row ({n_rows}), got {labels.shape}")
    if not np.all(np.isin(labels, (0, 1))):
        raise TuningError("labels must be 0 (normal) or 1 (anomaly)")
    as_int = labels.astype(np.int64)
    if as_int.sum() == 0 or as_int.sum() == n_rows:
        raise TuningError("labels must contain both normal and anomalous rows")
    return as_int


@dataclass(frozen=True)
class ScoreReference:
    """The scores a model version keeps so that its thresholds can move later."""

    detector_names: tuple[str, ...]
    train_scores: NDArray[np.float64]
    validation_scores: NDArray[np.float64] | None = None
    validation_labels: NDArray[np.int64] | None = None
    calibration_scores: NDArray[np.float64] | None = None
    """Scores of normal rows held out of the fit (an unlabelled model's calibration rows):
    a false-alarm target is bounded on them when there are no labelled validation rows."""

    def __post_init__(self) -> None:
        check_scores(self.train_scores, self.detector_names, "training scores")
        if self.calibration_scores is not None:
            check_scores(self.calibration_scores, self.detector_names, "calibration scores")
        if (self.validation_scores is None) != (self.validation_labels is None):
            raise TuningError("validation scores and labels go together")
        if self.validation_scores is not None and self.validation_labels is not None:
            check_scores(self.validation_scores, self.detector_names, "validation scores")
            check_labels(self.validation_labels, self.validation_scores.shape[0])

    @property
    def has_labels(self) -> bool:
        """Whether labelled validation rows were kept."""
        return self.validation_labels is not None

    def normal_scores(self) -> NDArray[np.float64]:
        """Rows known (or assumed) normal, the best kept: labelled-normal validation rows,
        else the held-out calibration rows, else the fitted rows."""
        if self.validation_scores is not None and self.validation_labels is not None:
            normal: NDArray[np.float64] = self.validation_scores[self.validation_labels == 0]
            return normal
        if self.calibration_scores is not None:
            return self.calibration_scores
        return self.train_scores

    def normal_source(self) -> str:
        """What ``normal_scores`` are, as a false-alarm statement names them."""
        if self.has_labels:
            return "kept normal validation rows"
        if self.calibration_scores is not None:
            return "kept calibration rows (never fitted on)"
        return "fitted rows (in-sample: later normal rows are flagged more often)"

    def to_bytes(self) -> bytes:
        """The compressed ``.npz`` form (no pickle)."""
        arrays: dict[str, Any] = {
            "detector_names": np.asarray(self.detector_names, dtype=np.str_),
            "train_scores": self.train_scores,
        }
        if self.validation_scores is not None and self.validation_labels is not None:
            arrays["validation_scores"] = self.validation_scores
            arrays["validation_labels"] = self.validation_labels
        if self.calibration_scores is not None:
            arrays["calibration_scores"] = self.calibration_scores
        sink = io.BytesIO()
        np.savez_compressed(sink, **arrays)
        return sink.getvalue()

    def save(self, path: Path) -> Path:
        """Write ``to_bytes`` to ``path``; returns ``path``."""
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def load(cls, path: Path) -> ScoreReference:
        """Read what ``save`` wrote (``allow_pickle=False``)."""
        with np.load(path, allow_pickle=False) as data:
            validation = "validation_scores" in data.files
            calibration = "calibration_scores" in data.files
            return cls(
                detector_names=tuple(str(n) for n in data["detector_names"]),
                train_scores=np.asarray(data["train_scores"], dtype=np.float64),
                validation_scores=data["validation_scores"] if validation else None,
                validation_labels=data["validation_labels"] if validation else None,
                calibration_scores=data["calibration_scores"] if calibration else None,
            )


@dataclass(frozen=True)
class TargetFPR:
    """The detector flags at most this share of later normal rows (95% bound)."""

    fpr: float


@dataclass(frozen=True)
class Contamination:
    """Each detector flags this share of the training rows."""

    contamination: float


@dataclass(frozen=True)
class TargetRecall:
    """Each detector flags at least this share of the labelled anomalies."""

    recall: float


@dataclass(frozen=True)
class Explicit:
    """Thresholds set by name; unnamed detectors keep their current threshold."""

    thresholds: Mapping[str, float]


@dataclass(frozen=True)
class MarginShift:
    """Lower every anomaly score by ``delta`` (each offset moves by ``-delta * scale``);
    ``reason`` says where the shift came from (e.g. the operator-feedback summary)."""

    delta: float
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)


Objective = TargetFPR | Contamination | TargetRecall | Explicit | MarginShift


def describe(objective: Objective) -> str:
    """The objective as recorded in a manifest (``target-fpr=0.01``, ...)."""
    if isinstance(objective, TargetFPR):
        return f"target-fpr={objective.fpr:g}"
    if isinstance(objective, Contamination):
        return f"contamination={objective.contamination:g}"
    if isinstance(objective, TargetRecall):
        return f"target-recall={objective.recall:g}"
    if isinstance(objective, MarginShift):
        return objective.reason
    return "thresholds=" + ",".join(f"{k}={v:g}" for k, v in sorted(objective.thresholds.items()))


def parse_thresholds(text: str) -> dict[str, float]:
    """``"name=value,name=value"`` (the CLI's ``--thresholds``) as a dict."""
    result: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise TuningError(f"expected name=value, got {part!r}")
        try:
            number = float(value)
        except ValueError as exc:
            raise TuningError(f"{name.strip()}: not a number: {value!r}") from exc
        if name.strip() in result:
            raise TuningError(f"{name.strip()} given twice")
        result[name.strip()] = _finite_float(number, f"threshold of {name.strip()}")
    return result


@dataclass
class _Thresholds:
    """A detector's thresholds as ``calibrate`` reads them."""

    offsets_: NDArray[np.float64]
    scales_: NDArray[np.float64]
    min_votes: int


def fpr_calibration(
    reference: ScoreReference,
    current: NDArray[np.float64],
    scales: ArrayLike | None,
    min_votes: int,
    fpr: float,
) -> Calibration:
    """Thresholds whose vote flags at most ``fpr`` of later normal rows (95% bound), from
    the best normal rows ``reference`` kept, with the statement of that bound: the rule
    training calibrates with, so a moved threshold keeps the rate it states."""
    rate = _open_unit(fpr, "target false-positive rate")
    if scales is None:
        raise TuningError("a target false-positive rate needs the detectors' scales")
    detector = _Thresholds(current, np.asarray(scales, dtype=np.float64), min_votes)
    try:
        return calibrate(detector, reference.normal_scores(), rate, where=reference.normal_source())
    except CalibrationError as exc:
        raise TuningError(str(exc)) from exc


def contamination_thresholds(
    train_scores: NDArray[np.float64], contamination: float
) -> NDArray[np.float64]:
    """Per column, the ``contamination``-quantile of the training scores."""
    c = _finite_float(contamination, "contamination")
    if not 0.0 < c <= 0.5:
        raise TuningError(f"contamination must be in (0, 0.5], got {c:g}")
    result: NDArray[np.float64] = np.percentile(train_scores, 100.0 * c, axis=0)
    return result


def recall_thresholds(
    scores: NDArray[np.float64], y: NDArray[np.int64], recall: float
) -> NDArray[np.float64]:
    """Per column, the lowest threshold flagging at least a share ``recall`` of anomalies.

    It sits halfway between the needed anomaly's score and the next higher score of any
    row, so rows tied with that anomaly are flagged with it.
    """
    r = _open_unit(recall, "target recall")
    positives = np.sort(scores[y == 1], axis=0)
    needed = math.ceil(r * positives.shape[0])
    result = np.empty(scores.shape[1])
    for j in range(scores.shape[1]):
        cut = positives[needed - 1, j]
        above = scores[:, j][scores[:, j] > cut]
        result[j] = (cut + above.min()) / 2.0 if above.size else cut + 1.0
    return result


def retune(
    reference: ScoreReference,
    current: ArrayLike,
    objective: Objective,
    scales: ArrayLike | None = None,
    min_votes: int = 1,
) -> NDArray[np.float64]:
    """New thresholds, one per detector of ``reference``, for ``objective`` (a
    ``MarginShift`` and a ``TargetFPR`` need the detectors' ``scales``; ``min_votes`` is
    the detector's vote)."""
    names = reference.detector_names
    before = np.asarray(current, dtype=np.float64)
    if before.shape != (len(names),) or not np.all(np.isfinite(before)):
        raise TuningError(f"current thresholds must be {len(names)} finite numbers")
    if isinstance(objective, MarginShift):
        if scales is None:
            raise TuningError("a margin shift needs the detectors' scales")
        delta = _finite_float(objective.delta, "margin shift")
        shifted: NDArray[np.float64] = before - delta * np.asarray(scales, dtype=np.float64)
        return shifted
    if isinstance(objective, TargetFPR):
        return fpr_calibration(reference, before, scales, min_votes, objective.fpr).offsets
    if isinstance(objective, Contamination):
        return contamination_thresholds(reference.train_scores, objective.contamination)
    if isinstance(objective, TargetRecall):
        if reference.validation_scores is None or reference.validation_labels is None:
            raise TuningError("a target recall needs labelled validation rows; none were kept")
        return recall_thresholds(
            reference.validation_scores, reference.validation_labels, objective.recall
        )
    unknown = sorted(set(objective.thresholds) - set(names))
    if unknown:
        raise TuningError(f"unknown detector(s) {unknown}; known: {list(names)}")
    if not objective.thresholds:
        raise TuningError("no thresholds given")
    after = before.copy()
    for name, value in objective.thresholds.items():
        after[names.index(name)] = _finite_float(value, f"threshold of {name}")
    return after


def vote_decision(min_votes: int) -> Decide:
    """The k-of-n vote: a row is anomalous when ``min_votes`` detectors flag it."""

    def decide(scores: NDArray[np.float64], thresholds: NDArray[np.float64]) -> NDArray[np.bool_]:
        result: NDArray[np.bool_] = (scores < thresholds).sum(axis=1) >= min_votes
        return result

    if min_votes < 1:
        raise TuningError(f"min_votes must be at least 1, got {min_votes}")
    return decide


def expected_rates(
    reference: ScoreReference, thresholds: ArrayLike, decide: Decide
) -> dict[str, float | None]:
    """What the model's decision would do with ``thresholds`` on the kept rows.

    ``flagged_training_share`` always; ``flagged_validation_share``, ``fpr``,
    ``precision``, ``recall`` from the labelled validation rows when there are any (else
    ``None``). ``expected_anomaly_rate`` is what the service should expect to flag (the
    ``anomaly_model_expected_anomaly_rate`` gauge): the validation share when there
    are labels (anomalies included, at the data's own rate), else the training share.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    training_share = float(decide(reference.train_scores, t).mean())
    out: dict[str, float | None] = {
        "expected_anomaly_rate": training_share,
        "flagged_training_share": training_share,
        "flagged_validation_share": None,
        "fpr": None,
        "precision": None,
        "recall": None,
    }
    if reference.validation_scores is not None and reference.validation_labels is not None:
        y = reference.validation_labels
        flagged = decide(reference.validation_scores, t)
        out["flagged_validation_share"] = out["expected_anomaly_rate"] = float(flagged.mean())
        tp = int(np.sum(flagged & (y == 1)))
        out["fpr"] = float(np.mean(flagged[y == 0]))
        out["recall"] = tp / int(np.sum(y == 1))
        out["precision"] = tp / int(flagged.sum()) if flagged.any() else None
    return out


def tradeoff_table(
    reference: ScoreReference, *, points: int = 21
) -> dict[str, list[dict[str, Any]]]:
    """Per detector, candidate thresholds and what each would flag (``GET /model/thresholds``).

    The candidates are the detector's normal-row score quantiles at ``points`` levels
    between 0.1% and 50% (finer at the low end, where thresholds live); each row gives
    ``threshold``, ``fpr`` (share of normal rows below it) and, with labels, the
    ``precision`` and ``recall`` on the validation rows.
    """
    if not 2 <= points <= 1000:
        raise TuningError(f"points must be in [2, 1000], got {points}")
    levels = np.geomspace(0.001, 0.5, points)
    normal = reference.normal_scores()
    table: dict[str, list[dict[str, Any]]] = {}
    for j, name in enumerate(reference.detector_names):
        candidates = np.unique(np.quantile(normal[:, j], levels))
        rows: list[dict[str, Any]] = []
        for t in candidates:
            row: dict[str, Any] = {
                "threshold": float(t),
                "fpr": float(np.mean(normal[:, j] < t)),
            }
            if reference.validation_scores is not None and reference.validation_labels is not None:
                y = reference.validation_labels
                flagged = reference.validation_scores[:, j] < t
                tp = int(np.sum(flagged & (y == 1)))
                row["recall"] = tp / int(np.sum(y == 1))
                row["precision"] = tp / int(flagged.sum()) if flagged.any() else None
            rows.append(row)
        table[name] = rows
    return table
