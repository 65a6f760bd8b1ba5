"""Stratified, seeded train/validation/test split of row indices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Split:
    """Row indices of each part; the parts are disjoint and cover every row."""

    train: NDArray[np.intp]
    validation: NDArray[np.intp]
    test: NDArray[np.intp]


def stratified_split(
    y: NDArray[np.int64],
    *,
    validation_size: float = 0.2,
    test_size: float = 0.2,
    seed: int = 42,
) -> Split:
    """Split rows so each part keeps the share of anomalies of ``y``.

    The test part is drawn first and never touched by fitting or threshold tuning.
    """
    if not (0 < validation_size < 1 and 0 < test_size < 1 and validation_size + test_size < 1):
        raise ValueError("validation_size and test_size must be in (0, 1) and sum below 1")
    indices = np.arange(len(y))
    rest, test = train_test_split(indices, test_size=test_size, stratify=y, random_state=seed)
    share = validation_size / (1.0 - test_size)
    train, validation = train_test_split(
        rest, test_size=share, stratify=y[rest], random_state=seed + 1
    )
    return Split(train=np.sort(train), validation=np.sort(validation), test=np.sort(test))
