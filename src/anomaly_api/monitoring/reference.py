"""The training distribution a model version keeps for drift tracking.

``build_drift_reference`` summarises the training matrix once (see ``drift`` for how
the tracker uses it): per feature a **quantile sketch** — its ``m`` mid-quantiles
``(i + 0.5) / m``, ``m = min(n_rows, sketch_rows)`` (1,000 by default), the sorted column
itself when the data are smaller; deterministic, no sampling seed — and the **decile
bin edges** with the share of training rows in each bin. It is stored as JSON
(``drift_reference.json``) beside the model: data, not a pickle, validated on load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

DRIFT_REFERENCE_FILE: Final = "drift_reference.json"
DEFAULT_SKETCH_ROWS: Final = 1000
DEFAULT_BINS: Final = 10
_FORMAT: Final = "quantile-sketch/v1"


def as_matrix(
    X: ArrayLike, n_features: int | None, what: str, *, check_finite: bool = True
) -> NDArray[np.float64]:
    data = np.asarray(X, dtype=np.float64)
    if data.ndim == 1:
        data = data.reshape(1, -1)
    if data.ndim != 2:
        raise ValueError(f"{what} must be 2-D (n_rows, n_features), got {data.ndim}-D")
    if n_features is not None and data.shape[1] != n_features:
        raise ValueError(f"{what} has {data.shape[1]} features, expected {n_features}")
    if check_finite and not np.all(np.isfinite(data)):
        raise ValueError(f"{what} contains non-finite values")
    return data


@dataclass(frozen=True)
class DriftReference:
    """The training distribution of every feature, as stored in the artifact."""

    feature_names: tuple[str, ...]
    sketch: NDArray[np.float64]
    """Mid-quantiles of each feature, shape (m, n_features), each column sorted."""
    bin_edges: NDArray[np.float64]
    """Interior bin edges of each feature, shape (n_features, n_bins - 1)."""
    bin_shares: NDArray[np.float64]
    """Share of training rows in each bin, shape (n_features, n_bins); rows sum to 1."""
    training_rows: int

    def __post_init__(self) -> None:
        n = len(self.feature_names)
        if n == 0 or len(set(self.feature_names)) != n:
            raise ValueError("feature names must be non-empty and distinct")
        if self.sketch.ndim != 2 or self.sketch.shape[1] != n or self.sketch.shape[0] < 1:
            raise ValueError(f"sketch must have shape (m >= 1, {n}), got {self.sketch.shape}")
        if self.bin_shares.ndim != 2 or self.bin_shares.shape[0] != n:
            raise ValueError(f"bin_shares must have {n} rows, got {self.bin_shares.shape}")
        if self.bin_edges.shape != (n, self.bin_shares.shape[1] - 1):
            raise ValueError(f"bin_edges shape {self.bin_edges.shape} does not fit bin_shares")
        for name, array in (("sketch", self.sketch), ("bin_edges", self.bin_edges)):
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{name} contains non-finite values")
        if np.any(np.diff(self.sketch, axis=0) < 0) or np.any(np.diff(self.bin_edges) < 0):
            raise ValueError("sketch columns and bin edges must be sorted")
        if not np.allclose(self.bin_shares.sum(axis=1), 1.0) or np.any(self.bin_shares < 0):
            raise ValueError("each feature's bin shares must be non-negative and sum to 1")
        if self.training_rows < 1:
            raise ValueError("training_rows must be at least 1")

    @property
    def n_features(self) -> int:
        """Number of features."""
        return len(self.feature_names)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (``from_dict`` reads it back exactly)."""
        return {
            "format": _FORMAT,
            "feature_names": list(self.feature_names),
            "training_rows": self.training_rows,
            "sketch": self.sketch.T.tolist(),
            "bin_edges": self.bin_edges.tolist(),
            "bin_shares": self.bin_shares.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftReference:
        """Read ``to_dict``'s output; a malformed reference raises ``ValueError``."""
        if data.get("format") != _FORMAT:
            raise ValueError(f"unknown drift reference format {data.get('format')!r}")
        try:
            return cls(
                feature_names=tuple(str(name) for name in data["feature_names"]),
                sketch=np.asarray(data["sketch"], dtype=np.float64).T.copy(),
                bin_edges=np.asarray(data["bin_edges"], dtype=np.float64).reshape(
                    len(data["feature_names"]), -1
                ),
                bin_shares=np.asarray(data["bin_shares"], dtype=np.float64),
                training_rows=int(data["training_rows"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed drift reference: {exc!r}") from exc


def bin_counts(column: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.int64]:
    index = np.searchsorted(edges, column, side="right")
    counts: NDArray[np.int64] = np.bincount(index, minlength=len(edges) + 1)
    return counts


def build_drift_reference(
    X: ArrayLike,
    feature_names: list[str] | tuple[str, ...],
    *,
    sketch_rows: int = DEFAULT_SKETCH_ROWS,
    n_bins: int = DEFAULT_BINS,
) -> DriftReference:
    """Summarise the training matrix ``X`` (n_rows, n_features) for drift tracking.

    Call it on the rows the model was fitted on (``TrainedModel.X_fit``).
    """
    if sketch_rows < 10:
        raise ValueError(f"sketch_rows must be at least 10, got {sketch_rows}")
    if not 2 <= n_bins <= 100:
        raise ValueError(f"n_bins must be in [2, 100], got {n_bins}")
    data = as_matrix(X, len(feature_names), "training data")
    n_rows = data.shape[0]
    if n_rows < 2:
        raise ValueError(f"need at least 2 training rows, got {n_rows}")
    if n_rows <= sketch_rows:
        sketch = np.sort(data, axis=0)
    else:
        levels = (np.arange(sketch_rows) + 0.5) / sketch_rows
        sketch = np.quantile(data, levels, axis=0)
    edges = np.quantile(data, np.arange(1, n_bins) / n_bins, axis=0).T.copy()
    shares = np.stack(
        [bin_counts(data[:, j], edges[j]) / n_rows for j in range(data.shape[1])]
    ).astype(np.float64)
    return DriftReference(
        feature_names=tuple(feature_names),
        sketch=np.ascontiguousarray(sketch),
        bin_edges=edges,
        bin_shares=shares,
        training_rows=n_rows,
    )


def save_drift_reference(reference: DriftReference, directory: Path) -> Path:
    """Write ``reference`` as ``drift_reference.json`` into a model version's directory."""
    path = directory / DRIFT_REFERENCE_FILE
    path.write_text(json.dumps(reference.to_dict(), separators=(",", ":")), encoding="utf-8")
    return path


def load_drift_reference(directory: Path) -> DriftReference | None:
    """The version's drift reference, or ``None`` when it was saved without one."""
    path = directory / DRIFT_REFERENCE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return DriftReference.from_dict(data)
