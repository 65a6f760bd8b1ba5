"""Retuning thresholds from kept scores: objectives, expected rates, trade-off table, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anomaly_api.training.calibration import largest_safe_rank
from anomaly_api.training.tuning import (
    Contamination,
    Explicit,
    ScoreReference,
    TargetFPR,
    TargetRecall,
    TuningError,
    check_scores,
    describe,
    expected_rates,
    parse_thresholds,
    retune,
    tradeoff_table,
    vote_decision,
)

NAMES = ("first", "second", "third")


@pytest.fixture(scope="module")
def labelled() -> ScoreReference:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(2000, 3))
    y = (rng.uniform(size=1000) < 0.1).astype(np.int64)
    validation = rng.normal(size=(1000, 3)) - 2.5 * y[:, None]
    return ScoreReference(NAMES, train, validation, y)


@pytest.fixture(scope="module")
def unlabelled(labelled: ScoreReference) -> ScoreReference:
    return ScoreReference(NAMES, labelled.train_scores)


CURRENT = np.array([-1.5, -1.5, -1.5])


SCALES = np.ones(3)


def _vote_rate(normal: np.ndarray, thresholds: np.ndarray, min_votes: int) -> float:
    return float(vote_decision(min_votes)(normal, thresholds).mean())


@pytest.mark.parametrize("min_votes", [1, 2])
def test_target_fpr_is_the_calibration_bound_on_the_normal_rows(
    labelled: ScoreReference, min_votes: int
) -> None:
    """The vote's flagged share is the k-th largest cut that ``calibrate`` chooses: the
    order-statistic bound, below the target on the rows it was chosen on."""
    normal = labelled.normal_scores()
    thresholds = retune(labelled, CURRENT, TargetFPR(0.05), SCALES, min_votes)
    k = largest_safe_rank(len(normal), 0.05)
    assert 0 < k < 0.05 * len(normal)
    assert _vote_rate(normal, thresholds, min_votes) == pytest.approx((k - 1) / len(normal))
    shift = CURRENT - thresholds
    np.testing.assert_allclose(shift, shift[0])  # every member moved by the same margin


def test_target_fpr_prefers_held_out_calibration_rows(labelled: ScoreReference) -> None:
    calibration = labelled.train_scores[:1000] + 0.5
    reference = ScoreReference(NAMES, labelled.train_scores, calibration_scores=calibration)
    assert reference.normal_source().startswith("kept calibration rows")
    thresholds = retune(reference, CURRENT, TargetFPR(0.05), SCALES)
    assert _vote_rate(calibration, thresholds, 1) < 0.05


def test_target_fpr_needs_the_scales(labelled: ScoreReference) -> None:
    with pytest.raises(TuningError, match="needs the detectors' scales"):
        retune(labelled, CURRENT, TargetFPR(0.05))


def test_unlabelled_references_say_they_are_in_sample(unlabelled: ScoreReference) -> None:
    assert "in-sample" in unlabelled.normal_source()
    thresholds = retune(unlabelled, CURRENT, TargetFPR(0.05), SCALES)
    assert _vote_rate(unlabelled.train_scores, thresholds, 1) < 0.05


def test_contamination_is_the_training_quantile(unlabelled: ScoreReference) -> None:
    thresholds = retune(unlabelled, CURRENT, Contamination(0.1))
    np.testing.assert_allclose(thresholds, np.percentile(unlabelled.train_scores, 10, axis=0))


def test_target_recall_flags_at_least_that_share_of_anomalies(labelled: ScoreReference) -> None:
    assert labelled.validation_scores is not None
    assert labelled.validation_labels is not None
    thresholds = retune(labelled, CURRENT, TargetRecall(0.8))
    anomalies = labelled.validation_scores[labelled.validation_labels == 1]
    recall = (anomalies < thresholds).mean(axis=0)
    assert np.all(recall >= 0.8)
    assert np.all(recall < 0.8 + 2 / len(anomalies))


def test_target_recall_needs_labels(unlabelled: ScoreReference) -> None:
    with pytest.raises(TuningError, match="needs labelled validation rows"):
        retune(unlabelled, CURRENT, TargetRecall(0.9))


def test_explicit_thresholds_replace_only_the_named_detectors(labelled: ScoreReference) -> None:
    after = retune(labelled, CURRENT, Explicit({"second": -2.0}))
    np.testing.assert_array_equal(after, [-1.5, -2.0, -1.5])


def test_expected_rates_of_a_vote(labelled: ScoreReference) -> None:
    thresholds = retune(labelled, CURRENT, TargetFPR(0.3), SCALES)
    single = expected_rates(labelled, thresholds, vote_decision(1))
    majority = expected_rates(labelled, thresholds, vote_decision(2))
    assert single["fpr"] is not None
    assert majority["fpr"] is not None
    assert majority["fpr"] <= single["fpr"]
    assert set(single) == {
        "expected_anomaly_rate",
        "flagged_training_share",
        "flagged_validation_share",
        "fpr",
        "precision",
        "recall",
    }
    assert majority["expected_anomaly_rate"] == majority["flagged_validation_share"]
    assert 0 < majority["flagged_training_share"] < 0.05


def test_expected_rates_without_labels_has_no_fpr(unlabelled: ScoreReference) -> None:
    rates = expected_rates(unlabelled, CURRENT, vote_decision(2))
    assert rates["expected_anomaly_rate"] == rates["flagged_training_share"]
    assert rates["fpr"] is None
    assert rates["recall"] is None


def test_tradeoff_table_is_monotone_and_labelled(labelled: ScoreReference) -> None:
    table = tradeoff_table(labelled, points=11)
    assert list(table) == list(NAMES)
    for rows in table.values():
        thresholds = [r["threshold"] for r in rows]
        assert thresholds == sorted(thresholds)
        fprs = [r["fpr"] for r in rows]
        recalls = [r["recall"] for r in rows]
        assert fprs == sorted(fprs)
        assert recalls == sorted(recalls)
        assert 0 < fprs[-1] <= 0.5


def test_tradeoff_table_without_labels_has_fpr_only(unlabelled: ScoreReference) -> None:
    rows = tradeoff_table(unlabelled, points=5)["first"]
    assert set(rows[0]) == {"threshold", "fpr"}


def test_reference_round_trips_through_npz(labelled: ScoreReference, tmp_path: Path) -> None:
    loaded = ScoreReference.load(labelled.save(tmp_path / "scores.npz"))
    assert loaded.detector_names == NAMES
    np.testing.assert_array_equal(loaded.train_scores, labelled.train_scores)
    assert loaded.validation_labels is not None
    assert loaded.validation_labels.tolist() == labelled.validation_labels.tolist()  # type: ignore[union-attr]
    unlabelled = ScoreReference.load(
        ScoreReference(NAMES, labelled.train_scores).save(tmp_path / "u.npz")
    )
    assert not unlabelled.has_labels


def test_describe_and_parse() -> None:
    assert describe(TargetFPR(0.01)) == "target-fpr=0.01"
    assert describe(Contamination(0.05)) == "contamination=0.05"
    assert describe(TargetRecall(0.9)) == "target-recall=0.9"
    assert describe(Explicit({"b": -1.0, "a": 0.5})) == "thresholds=a=0.5,b=-1"
    assert parse_thresholds("first=-0.5, third=1e-2") == {"first": -0.5, "third": 0.01}


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        (TargetFPR(0.0), r"false-positive rate must be in \(0, 1\)"),
        (TargetFPR(1.0), r"false-positive rate must be in \(0, 1\)"),
        (TargetFPR(-0.1), r"false-positive rate must be in \(0, 1\)"),
        (TargetFPR(float("nan")), "must be finite"),
        (Contamination(0.0), r"contamination must be in \(0, 0.5\]"),
        (Contamination(0.7), r"contamination must be in \(0, 0.5\]"),
        (TargetRecall(1.0), r"recall must be in \(0, 1\)"),
        (TargetRecall(float("inf")), "must be finite"),
        (Explicit({"fourth": 1.0}), r"unknown detector\(s\) \['fourth'\]"),
        (Explicit({"first": float("nan")}), "threshold of first must be finite"),
        (Explicit({"first": "low"}), "threshold of first must be a number"),  # type: ignore[dict-item]
        (Explicit({}), "no thresholds given"),
    ],
)
def test_bad_objectives_are_refused(
    labelled: ScoreReference, objective: object, message: str
) -> None:
    with pytest.raises(TuningError, match=message):
        retune(labelled, CURRENT, objective)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("first", "expected name=value"),
        ("=1", "expected name=value"),
        ("first=abc", "not a number"),
        ("first=inf", "must be finite"),
        ("first=1,first=2", "given twice"),
    ],
)
def test_bad_threshold_text_is_refused(text: str, message: str) -> None:
    with pytest.raises(TuningError, match=message):
        parse_thresholds(text)


def test_bad_current_thresholds_are_refused(labelled: ScoreReference) -> None:
    with pytest.raises(TuningError, match="current thresholds"):
        retune(labelled, [0.0, 0.0], TargetFPR(0.1))
    with pytest.raises(TuningError, match="current thresholds"):
        retune(labelled, [0.0, np.nan, 0.0], TargetFPR(0.1))


@pytest.mark.parametrize(
    ("scores", "names", "message"),
    [
        (np.zeros((5, 2)), NAMES, r"shape \(n_samples, 3\)"),
        (np.zeros((1, 3)), NAMES, "at least 2 rows"),
        (np.array([[0.0, np.inf, 0.0]] * 3), NAMES, "non-finite"),
        (np.zeros((5, 2)), ("a", "a"), "distinct"),
        (np.zeros((5, 0)), (), "non-empty"),
        ([["x", "y", "z"]] * 3, NAMES, "must be numbers"),
    ],
)
def test_bad_score_matrices_are_refused(
    scores: object, names: tuple[str, ...], message: str
) -> None:
    with pytest.raises(TuningError, match=message):
        check_scores(scores, names)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros(5, dtype=np.int64), "both normal and anomalous"),
        (np.array([0, 1, 2, 0, 1]), "0 \\(normal\\) or 1"),
        (np.array([0, 1]), "one value per row"),
    ],
)
def test_bad_labels_are_refused(labels: np.ndarray, message: str) -> None:
    with pytest.raises(TuningError, match=message):
        ScoreReference(NAMES, np.zeros((5, 3)), np.zeros((5, 3)), labels)


def test_validation_scores_need_labels() -> None:
    with pytest.raises(TuningError, match="go together"):
        ScoreReference(NAMES, np.zeros((5, 3)), np.zeros((5, 3)), None)


def test_min_votes_must_be_positive() -> None:
    with pytest.raises(TuningError, match="min_votes"):
        vote_decision(0)
