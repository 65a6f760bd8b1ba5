"""Reading and validating users' CSV/Parquet files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomaly_api.data.loading import (
    DataError,
    dataset_from_frame,
    load_dataset,
    synthetic_dataset,
    write_table,
)
from anomaly_api.data.synthetic import SENSOR_CHANNELS, generate_sensor_data


def _frame(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame["is_anomaly"] = 0
    frame.loc[:9, "is_anomaly"] = 1
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_generated_file_round_trips(tmp_path: Path, suffix: str) -> None:
    frame = generate_sensor_data(300, seed=3)
    path = tmp_path / f"data{suffix}"
    write_table(frame, path)
    dataset = load_dataset(path)
    assert dataset.feature_names == list(SENSOR_CHANNELS)  # timestamp and kind left out
    np.testing.assert_allclose(dataset.X, frame[list(SENSOR_CHANNELS)].to_numpy())
    assert dataset.y is not None
    assert dataset.y.tolist() == frame["is_anomaly"].tolist()
    assert dataset.kinds is not None
    assert set(dataset.kinds.tolist()) >= {"normal", "spike"}


def test_synthetic_dataset_matches_generator() -> None:
    dataset = synthetic_dataset(seed=5, n_rows=200)
    assert dataset.X.shape == (200, 8)
    assert "seed=5" in dataset.source


def test_features_and_label_column_can_be_chosen() -> None:
    frame = _frame().rename(columns={"is_anomaly": "target"})
    dataset = dataset_from_frame(frame, source="t", features=["b"], label_column="target")
    assert dataset.feature_names == ["b"]
    assert dataset.y is not None
    assert int(dataset.y.sum()) == 10


def test_without_label_column_the_data_is_unlabelled() -> None:
    dataset = dataset_from_frame(_frame().drop(columns="is_anomaly"), source="t")
    assert dataset.y is None
    assert dataset.feature_names == ["a", "b"]


def _with(column: str, values: object) -> pd.DataFrame:
    frame = _frame()
    frame[column] = values
    return frame


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (_with("a", np.nan), {}, "feature column 'a' has 120 missing values"),
        (_with("s", "x"), {}, "column 's' is not numeric"),
        (_with("s", "x"), {"features": ["a", "s"]}, "feature column 's' is not numeric"),
        (_with("a", np.inf), {}, "feature column 'a' has infinite values"),
        (_frame(), {"features": ["a", "zz"]}, "feature column 'zz' not found"),
        (_frame(), {"features": ["a", "is_anomaly"]}, "'is_anomaly' is the label"),
        (_frame(), {"label_column": "target"}, "label column 'target' not found"),
        (_with("is_anomaly", 2), {}, "must hold only 0"),
        (_with("is_anomaly", np.nan), {}, "label column 'is_anomaly' has 120 missing"),
        (_with("is_anomaly", [0] * 119 + [1]), {}, "marks 1 anomalies"),
        (_with("is_anomaly", 1), {}, "marks every row anomalous"),
        (_frame(30), {}, "need at least 50 rows, got 30"),
        (_frame()[["is_anomaly"]], {}, "no numeric feature columns"),
    ],
)
def test_bad_data_names_the_problem(
    frame: pd.DataFrame, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        dataset_from_frame(frame, source="t", **kwargs)  # type: ignore[arg-type]


def test_a_label_column_without_anomalies_means_every_row_is_normal() -> None:
    dataset = dataset_from_frame(_with("is_anomaly", 0), source="t")
    assert dataset.y is None
    assert "is_anomaly" not in dataset.feature_names


def test_unreadable_files_give_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "missing.csv")
    with pytest.raises(DataError, match=r"unsupported file type '\.txt'"):
        load_dataset(tmp_path / "data.txt")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="cannot be read"):
        load_dataset(empty)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot be read"):
        load_dataset(broken)
    with pytest.raises(DataError, match="unsupported file type"):
        write_table(_frame(), tmp_path / "out.json")
