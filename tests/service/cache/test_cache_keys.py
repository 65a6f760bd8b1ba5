"""Cache keys: model version plus a hash of the canonical float64 row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from anomaly_api.service.cache import prediction_keys

ROW = np.array([0.5, -1.25, 3.0, 0.0, 1e-300, -7.0, 2.5, 100.0])


def _key(prefix: str, version: str, row: Any) -> str:
    """The cache key of one row."""
    return prediction_keys(prefix, version, np.reshape(np.asarray(row, dtype=np.float64), (1, -1)))[
        0
    ]


def test_key_has_prefix_version_and_hex_digest() -> None:
    key = _key("p:", "v1", ROW)
    head, digest = key.rsplit(":", 1)
    assert head == "p:v1"
    assert len(digest) == 32
    int(digest, 16)


def test_keys_differ_per_model_version() -> None:
    assert _key("p:", "v1", ROW) != _key("p:", "v2", ROW)


def test_negative_zero_shares_the_key_of_zero() -> None:
    negative = ROW.copy()
    negative[3] = -0.0
    assert np.signbit(negative[3])
    assert _key("p:", "v1", negative) == _key("p:", "v1", ROW)


def test_integer_and_float_readings_share_a_key() -> None:
    ints = np.arange(8)
    assert _key("p:", "v", ints) == _key("p:", "v", ints.astype(np.float64))


def test_different_rows_get_different_keys() -> None:
    other = ROW.copy()
    other[0] = np.nextafter(other[0], 1.0)
    assert _key("p:", "v1", other) != _key("p:", "v1", ROW)


def test_batch_keys_match_single_keys_for_non_contiguous_input() -> None:
    X = np.asfortranarray(np.random.default_rng(0).normal(size=(5, 8)))
    keys = prediction_keys("p:", "v1", X)
    assert keys == [_key("p:", "v1", row) for row in X]
    assert len(set(keys)) == 5


def test_empty_batch_has_no_keys() -> None:
    assert prediction_keys("p:", "v1", np.empty((0, 8))) == []


def test_one_dimensional_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="2-D"):
        prediction_keys("p:", "v1", ROW)
