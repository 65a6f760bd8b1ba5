"""Robust input scaling: fitted on the training rows, applied identically on every path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from anomaly_api.detection import AnomalyEnsemble
from anomaly_api.detection.ensemble import MEMBERS
from anomaly_api.detection.fast import compile_scorer
from anomaly_api.detection.scaling import (
    IQR_TO_STD,
    MAD_TO_STD,
    SPREAD_FLOOR,
    apply_scaling,
    fit_robust_scaling,
    iqr_std,
    mad_std,
    spread_floor,
)


def test_centre_is_the_median_and_scale_the_iqr_over_1_349() -> None:
    X = np.column_stack([np.arange(101.0), 1000.0 + 4.0 * np.arange(101.0)])
    center, scale, rule = fit_robust_scaling(X)
    np.testing.assert_array_equal(center, [50.0, 1200.0])
    np.testing.assert_allclose(scale, [50.0 / IQR_TO_STD, 200.0 / IQR_TO_STD])
    assert rule.tolist() == ["iqr", "iqr"]


def test_constants_are_the_standard_normals_own() -> None:
    normal = stats.norm()
    assert IQR_TO_STD == normal.ppf(0.75) - normal.ppf(0.25) == 1.3489795003921634
    assert MAD_TO_STD * normal.ppf(0.75) == pytest.approx(1.0, rel=1e-15)


def test_both_spreads_estimate_a_normal_standard_deviation() -> None:
    X = np.random.default_rng(3).normal(scale=[1.0, 5.0], size=(200_000, 2))
    np.testing.assert_allclose(iqr_std(X), [1.0, 5.0], rtol=0.01)
    np.testing.assert_allclose(mad_std(X), [1.0, 5.0], rtol=0.01)


def test_mad_std_is_scipys_normal_scaled_mad() -> None:
    X = np.random.default_rng(4).standard_t(3, size=(501, 3))
    np.testing.assert_array_equal(mad_std(X), stats.median_abs_deviation(X, axis=0, scale="normal"))
    assert mad_std(X[:, 0]) == pytest.approx(
        MAD_TO_STD * np.median(np.abs(X[:, 0] - np.median(X[:, 0]))), rel=1e-15
    )


def test_outliers_in_the_training_rows_do_not_inflate_the_scale() -> None:
    X = np.random.default_rng(0).normal(size=(1000, 1))
    _, clean, _ = fit_robust_scaling(X)
    X[:20] = 1e6
    _, dirty, _ = fit_robust_scaling(X)
    assert dirty[0] == pytest.approx(clean[0], rel=0.1)


def test_zero_iqr_with_rare_excursions_falls_back_to_the_standard_deviation() -> None:
    X = np.zeros((100, 2))
    X[:, 0] = np.arange(100.0)
    X[:3, 1] = 5.0  # mostly constant: IQR 0, but it does vary
    _, scale, rule = fit_robust_scaling(X)
    assert rule.tolist() == ["iqr", "std"]
    assert scale[1] == pytest.approx(X[:, 1].std())


def test_constant_columns_get_the_floor_of_their_magnitude() -> None:
    X = np.column_stack([np.arange(50.0), np.full(50, -250.0), np.zeros(50), np.full(50, 0.5)])
    center, scale, rule = fit_robust_scaling(X)
    assert rule.tolist() == ["iqr", "floor", "floor", "floor"]
    np.testing.assert_array_equal(center[1:], [-250.0, 0.0, 0.5])
    # max(|value|, 1) * SPREAD_FLOOR: never zero, relative to the value when it is large
    np.testing.assert_array_equal(scale[1:], [250.0 * SPREAD_FLOOR, SPREAD_FLOOR, SPREAD_FLOOR])
    np.testing.assert_array_equal(spread_floor(center[1:]), scale[1:])
    scaled = apply_scaling(
        np.array([[1.0, -250.0, 0.0, 0.5], [1.0, -250.025, 0.001, 0.5]]), center, scale
    )
    np.testing.assert_array_equal(scaled[0, 1:], [0.0, 0.0, 0.0])  # still constant: no deviation
    assert abs(scaled[1, 1]) == pytest.approx(100.0)
    assert scaled[1, 2] == pytest.approx(1000.0)


def test_a_constant_feature_is_fitted_quiet_while_constant_and_flagged_when_it_moves() -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(400, 2)), columns=["a", "b"])
    frame["flat"] = 3.0
    model = AnomalyEnsemble(detectors=MEMBERS, n_estimators=20, random_state=0).fit(frame)
    assert model.scale_rule_.tolist() == ["iqr", "iqr", "floor"]
    later = pd.DataFrame(rng.normal(size=(300, 2)), columns=["a", "b"])
    later["flat"] = 3.0
    quiet = model.predict(later)
    assert (quiet == -1).mean() < 0.1  # as often as on any normal data: the constant adds nothing
    later["flat"] = 3.001
    assert (model.predict(later) == -1).all()
    # the constant feature carries the whole contribution of a row where it moved
    shares = model.explain(later[:5]).contributions
    assert shares is not None
    assert (shares[:, 2] > 0.99).all()


def test_members_see_scaled_data_so_units_do_not_matter() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(600, 4))
    units = np.array([0.2, 1.0, 30.0, 4500.0])  # TEP-like spread of units
    X_test = rng.normal(scale=2.0, size=(200, 4))
    detectors = ("local_outlier_factor", "zscore", "pca")
    a = AnomalyEnsemble(detectors=detectors).fit(base)
    b = AnomalyEnsemble(detectors=detectors).fit(base * units)
    np.testing.assert_allclose(
        a.detector_scores(X_test), b.detector_scores(X_test * units), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_array_equal(a.predict(X_test), b.predict(X_test * units))


@pytest.mark.parametrize("kernel", ["c", "numpy"])
def test_scaling_is_the_same_on_every_backend(kernel: str) -> None:
    rng = np.random.default_rng(2)
    units = np.array([0.2, 1.0, 30.0, 4500.0, 1.0, 7.0])
    X = rng.normal(size=(500, 6)) * units + 100.0
    model = AnomalyEnsemble(
        detectors=("isolation_forest", "local_outlier_factor", "zscore", "pca"), n_estimators=20
    ).fit(X)
    scorer = compile_scorer(model, kernel)  # type: ignore[arg-type]
    np.testing.assert_array_equal(scorer.center_, model.center_)
    np.testing.assert_array_equal(scorer.scale_, model.scale_)
    X_new = rng.normal(scale=3.0, size=(300, 6)) * units + 100.0
    # One function scales on every path: bit-for-bit the same input to the members.
    np.testing.assert_array_equal(
        apply_scaling(X_new, model.center_, model.scale_), model.scale(X_new)
    )
    np.testing.assert_allclose(
        scorer.detector_scores(X_new), model.detector_scores(X_new), rtol=1e-9, atol=1e-9
    )
