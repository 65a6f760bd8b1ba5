"""The stratified train/validation/test split."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.training.split import stratified_split


def test_parts_are_disjoint_cover_everything_and_keep_the_anomaly_share() -> None:
    y = np.zeros(1000, dtype=np.int64)
    y[::20] = 1
    split = stratified_split(y, seed=1)
    together = np.concatenate([split.train, split.validation, split.test])
    assert sorted(together.tolist()) == list(range(1000))
    assert (len(split.train), len(split.validation), len(split.test)) == (600, 200, 200)
    for part in (split.train, split.validation, split.test):
        assert y[part].mean() == pytest.approx(0.05)


def test_same_seed_same_split_other_seed_other_split() -> None:
    y = np.tile(np.array([0, 0, 0, 0, 1]), 100).astype(np.int64)
    a, b = stratified_split(y, seed=3), stratified_split(y, seed=3)
    assert np.array_equal(a.test, b.test)
    assert np.array_equal(a.validation, b.validation)
    assert not np.array_equal(a.test, stratified_split(y, seed=4).test)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="sum below 1"):
        stratified_split(np.zeros(10, dtype=np.int64), validation_size=0.5, test_size=0.5)
