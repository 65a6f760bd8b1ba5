"""Artifact formats: a format 2 model (fitted with the constants of its time) loads and
scores exactly as it was fitted; newer formats than this version reads are refused."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from anomaly_api.artifacts import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    ArtifactError,
    TimeAwareArtifact,
    load_any_artifact,
    load_artifact,
)
from anomaly_api.data.timeseries import synthetic_timeseries
from anomaly_api.detection import time_aware, zscore
from anomaly_api.detection.scaling import IQR_TO_STD
from anomaly_api.detection.time_aware import TimeAwareModel
from anomaly_api.training import thresholds
from factories import fit_time_aware_artifact, fit_tiny_artifact

FORMAT_2_IQR_TO_STD = 1.349
FORMAT_2_MAD_TO_STD = 1.4826
FORMAT_2_MIN_SCALE = 1e-12


def _format_2_channel_scaling(
    data: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.str_]]:
    """A time-aware model's channel scaling as format 2 fitted it."""
    center = np.median(data, axis=0)
    q75, q25 = np.percentile(data, [75.0, 25.0], axis=0)
    scale = (q75 - q25) / FORMAT_2_IQR_TO_STD
    scale = np.where(scale > FORMAT_2_MIN_SCALE, scale, data.std(axis=0))
    return center, scale, np.where(scale > 0, "iqr", "std")


def _format_2_mad_std(X: NDArray[np.float64]) -> NDArray[np.float64]:
    result: NDArray[np.float64] = FORMAT_2_MAD_TO_STD * np.median(
        np.abs(X - np.median(X, axis=0)), axis=0
    )
    return result


@dataclass(frozen=True)
class Fit:
    artifacts_dir: Path
    model: TimeAwareModel
    scores: NDArray[np.float64]
    shares: NDArray[np.float64]
    newest: NDArray[np.float64]
    """``score_window(last=1)`` answers of the last readings, one at a time."""


READINGS = synthetic_timeseries(seed=4, n_rows=1500).data.X


def _stream_answers(model: TimeAwareModel) -> NDArray[np.float64]:
    seconds = np.arange(len(READINGS), dtype=np.float64)
    window = model.window
    return np.array(
        [
            model.score_window(
                seconds[end - window : end], READINGS[end - window : end]
            ).anomaly_score[0]
            for end in range(len(READINGS) - 20, len(READINGS) + 1)
        ]
    )


def _fit(artifacts_dir: Path, format_version: int) -> Fit:
    path = fit_time_aware_artifact(artifacts_dir, version="v", n_rows=3000)
    manifest_file = path / MANIFEST_FILE
    manifest = json.loads(manifest_file.read_text())
    manifest["format_version"] = format_version
    manifest_file.write_text(json.dumps(manifest))
    model = load_any_artifact(artifacts_dir, "v").model
    assert isinstance(model, TimeAwareModel)
    out = model.score_frame(READINGS)
    return Fit(artifacts_dir, model, out.anomaly_score, out.shares, _stream_answers(model))


@pytest.fixture(scope="module")
def format_2_fit(tmp_path_factory: pytest.TempPathFactory) -> Fit:
    """A time-aware artifact fitted with format 2's constants, its manifest saying so."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time_aware, "fit_robust_scaling", _format_2_channel_scaling)
        patch.setattr(time_aware, "mad_std", _format_2_mad_std)
        patch.setattr(zscore, "mad_std", _format_2_mad_std)
        patch.setattr(thresholds, "mad_std", _format_2_mad_std)
        return _fit(tmp_path_factory.mktemp("format2"), 2)


@pytest.fixture(scope="module")
def current_fit(tmp_path_factory: pytest.TempPathFactory) -> Fit:
    """The same training with this version's constants."""
    return _fit(tmp_path_factory.mktemp("current"), FORMAT_VERSION)


def test_a_format_2_model_scores_bit_for_bit_as_fitted(format_2_fit: Fit) -> None:
    artifact = load_any_artifact(format_2_fit.artifacts_dir)
    assert isinstance(artifact, TimeAwareArtifact)
    assert artifact.manifest.format_version == 2 < FORMAT_VERSION
    out = artifact.model.score_frame(READINGS)
    np.testing.assert_array_equal(out.anomaly_score, format_2_fit.scores)
    np.testing.assert_array_equal(out.shares, format_2_fit.shares)
    np.testing.assert_array_equal(_stream_answers(artifact.model), format_2_fit.newest)


def test_a_format_2_model_keeps_the_scales_it_was_fitted_with(
    format_2_fit: Fit, current_fit: Fit
) -> None:
    """Its channels keep IQR / 1.349: its answers are not those of the same training today."""
    old, new = format_2_fit.model, current_fit.model
    np.testing.assert_allclose(
        old.scale_ * FORMAT_2_IQR_TO_STD, new.scale_ * IQR_TO_STD, rtol=1e-13
    )
    assert not np.array_equal(old.scale_, new.scale_)
    assert not np.array_equal(old.feature_scale_, new.feature_scale_)
    assert not np.array_equal(format_2_fit.scores, current_fit.scores)


def test_newer_formats_are_refused(tmp_path: Path) -> None:
    path = fit_tiny_artifact(tmp_path)
    manifest_file = path / MANIFEST_FILE
    manifest = json.loads(manifest_file.read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    manifest["format_version"] = FORMAT_VERSION + 1
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"newer than this version reads.*upgrade"):
        load_artifact(tmp_path)
