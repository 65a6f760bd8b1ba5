"""The three-detector ensemble: each detector, the vote and the score definitions."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.exceptions import NotFittedError

from anomaly_api.detection import DETECTOR_NAMES, AnomalyEnsemble


@pytest.fixture(scope="module")
def normal_data() -> NDArray[np.float64]:
    return np.random.default_rng(0).normal(size=(800, 4))


@pytest.fixture(scope="module")
def fitted(normal_data: NDArray[np.float64]) -> AnomalyEnsemble:
    return AnomalyEnsemble(n_estimators=50, random_state=0).fit(normal_data)


FAR = np.array([[9.0, -9.0, 9.0, -9.0]])
CENTRE = np.zeros((1, 4))


def test_each_detector_alone_flags_a_far_point_and_not_the_centre(
    fitted: AnomalyEnsemble,
) -> None:
    detectors = [fitted.isolation_forest_, fitted.local_outlier_factor_, fitted.zscore_]
    X = np.vstack([CENTRE, FAR])
    scores = fitted.detector_scores(X)
    for i, detector in enumerate(detectors):
        # Every member sees the robustly scaled rows.
        assert scores[:, i].tolist() == detector.score_samples(fitted.scale(X)).tolist()
        assert scores[0, i] > fitted.offsets_[i] > scores[1, i], DETECTOR_NAMES[i]


def test_lof_is_fitted_in_novelty_mode(fitted: AnomalyEnsemble) -> None:
    assert fitted.local_outlier_factor_.novelty is True


def test_each_detector_flags_about_contamination_of_training_rows(
    fitted: AnomalyEnsemble, normal_data: NDArray[np.float64]
) -> None:
    output = fitted.explain(normal_data)
    # LOF scores training rows as new samples (each is its own neighbour): fewer flags.
    shares = output.votes.mean(axis=0)
    assert shares[0] == pytest.approx(0.05, abs=0.01)
    assert shares[2] == pytest.approx(0.05, abs=0.01)
    assert shares[1] < 0.05


def test_decision_is_two_of_three(fitted: AnomalyEnsemble) -> None:
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(300, 4)), rng.normal(scale=4.0, size=(100, 4))])
    output = fitted.explain(X)
    assert np.array_equal(output.is_anomaly, output.votes.sum(axis=1) >= 2)
    assert output.is_anomaly.any()
    assert not output.is_anomaly.all()


def test_anomaly_score_is_the_second_largest_margin(fitted: AnomalyEnsemble) -> None:
    X = np.random.default_rng(4).normal(scale=2.0, size=(50, 4))
    output = fitted.explain(X)
    margins = (fitted.offsets_ - output.scores) / fitted.scales_
    assert output.anomaly_score == pytest.approx(np.sort(margins, axis=1)[:, 1])
    assert np.array_equal(output.is_anomaly, output.anomaly_score > 0)
    assert np.all((output.confidence >= 0.5) & (output.confidence < 1.0))


def test_score_samples_decision_and_predict_follow_sklearn(fitted: AnomalyEnsemble) -> None:
    X = np.random.default_rng(5).normal(scale=2.0, size=(100, 4))
    output = fitted.explain(X)
    assert fitted.offset_ == 0.0
    assert fitted.score_samples(X) == pytest.approx(-output.anomaly_score)
    assert fitted.decision_function(X) == pytest.approx(fitted.score_samples(X))
    assert np.array_equal(fitted.predict(X) == -1, output.is_anomaly)


def test_score_grows_monotonically_along_a_ray(fitted: AnomalyEnsemble) -> None:
    direction = np.array([1.0, -1.0, 1.0, -1.0]) / 2.0
    ray = np.outer(np.linspace(3.0, 12.0, 40), direction)
    score = fitted.explain(ray).anomaly_score
    assert np.all(np.diff(score) >= -1e-9)
    assert score[-1] > 0


def test_sample_on_the_boundary_is_normal_with_confidence_one_half(
    normal_data: NDArray[np.float64],
) -> None:
    model = AnomalyEnsemble(n_estimators=20, random_state=0).fit(normal_data)
    scores = model.detector_scores(FAR)[0]
    model.set_offsets(scores)  # every margin is exactly zero
    output = model.explain(FAR)
    assert output.anomaly_score.tolist() == [0.0]
    assert output.is_anomaly.tolist() == [False]
    assert output.confidence.tolist() == [0.5]
    model.set_offsets(scores + 1e-6)
    assert model.explain(FAR).is_anomaly.tolist() == [True]


def test_set_offsets_validates(fitted: AnomalyEnsemble) -> None:
    with pytest.raises(ValueError, match="3 finite numbers"):
        fitted.set_offsets([0.0, 1.0])
    with pytest.raises(ValueError, match="3 finite numbers"):
        fitted.set_offsets([0.0, np.nan, 1.0])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"min_votes": 4}, "min_votes"),
        ({"contamination": 0.6}, "contamination"),
        ({"n_neighbors": 900}, "n_neighbors"),
    ],
)
def test_fit_rejects_bad_parameters(
    normal_data: NDArray[np.float64], params: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AnomalyEnsemble(**params).fit(normal_data)  # type: ignore[arg-type]


def test_unfitted_model_and_wrong_width_are_refused(fitted: AnomalyEnsemble) -> None:
    with pytest.raises(NotFittedError):
        AnomalyEnsemble().predict(CENTRE)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(np.zeros((1, 3)))


def test_get_params_round_trip_and_same_seed_same_scores(
    normal_data: NDArray[np.float64], fitted: AnomalyEnsemble
) -> None:
    params = fitted.get_params()
    assert params["random_state"] == 0
    again = AnomalyEnsemble(**params).fit(normal_data)
    X = np.random.default_rng(6).normal(size=(20, 4))
    assert np.array_equal(again.score_samples(X), fitted.score_samples(X))


@pytest.mark.parametrize(
    ("detectors", "min_votes", "message"),
    [
        (("zscore", "forest"), 1, r"unknown detectors \['forest'\]"),
        (("zscore", "zscore"), 1, "distinct"),
        ((), 1, "at least one"),
        (("zscore", "pca"), 3, r"min_votes must be in \[1, 2\]"),
    ],
)
def test_members_are_validated(
    normal_data: NDArray[np.float64], detectors: tuple[str, ...], min_votes: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AnomalyEnsemble(detectors=detectors, min_votes=min_votes).fit(normal_data)


def test_chosen_members_in_their_order_with_a_k_of_n_vote(
    normal_data: NDArray[np.float64],
) -> None:
    model = AnomalyEnsemble(
        detectors=("pca", "zscore", "isolation_forest", "local_outlier_factor"),
        min_votes=3,
        n_estimators=20,
    ).fit(normal_data)
    assert model.detectors_ == ("pca", "zscore", "isolation_forest", "local_outlier_factor")
    assert model.offsets_.shape == model.scales_.shape == (4,)
    X = np.random.default_rng(8).normal(scale=3.0, size=(200, 4))
    output = model.explain(X)
    assert output.scores.shape == (200, 4)
    np.testing.assert_array_equal(output.scores[:, 0], model.pca_.score_samples(model.scale(X)))
    np.testing.assert_array_equal(output.is_anomaly, output.votes.sum(axis=1) >= 3)
    assert output.is_anomaly.any()
    with pytest.raises(ValueError, match="4 finite numbers"):
        model.set_offsets([0.0, 0.0, 0.0])


def test_a_single_member_without_lof_needs_no_neighbours(normal_data: NDArray[np.float64]) -> None:
    model = AnomalyEnsemble(detectors=("zscore",), min_votes=1, n_neighbors=5000)
    assert model.fit(normal_data[:100]).detectors_ == ("zscore",)
    assert not hasattr(model, "local_outlier_factor_")
