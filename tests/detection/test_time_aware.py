"""The time-aware model: serving windows equal training frames; it finds what lasts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from anomaly_api.artifacts import save_artifact
from anomaly_api.data.anomalies import plan_segments
from anomaly_api.data.synthetic import SENSOR_CHANNELS, clean_signal
from anomaly_api.data.timeseries import TimeSeriesDataset, synthetic_timeseries
from anomaly_api.detection.following import Followed, follow_alpha, follow_rows
from anomaly_api.detection.time_aware import TimeAwareModel
from anomaly_api.training.time_aware import TrainedTimeAware, fit_time_aware

SEED = 3
N_ROWS = 10_000


@pytest.fixture(scope="module")
def series() -> TimeSeriesDataset:
    return synthetic_timeseries(seed=SEED, n_rows=N_ROWS)


@pytest.fixture(scope="module")
def trained(series: TimeSeriesDataset) -> TrainedTimeAware:
    """The defaults with the ``follow`` feature on (memory 500), which every path keeps."""
    from anomaly_api.training.time_aware import TimeAwareSettings

    return fit_time_aware(series, TimeAwareSettings(follow_memory=500))


def _affected_channels() -> list[tuple[str, int, int, set[int]]]:
    """Each injected segment's kind, rows and the channels the injection changed."""
    from anomaly_api.data.anomalies import inject_anomalies, row_kinds

    rng = np.random.default_rng(SEED)
    signal = clean_signal(rng, N_ROWS)
    segments = plan_segments(rng, N_ROWS, round(N_ROWS * 0.05))
    kinds = row_kinds(segments, N_ROWS)
    normal = signal[kinds == "normal"]
    standardized = (signal - normal.mean(axis=0)) / normal.std(axis=0)
    injected = inject_anomalies(rng, standardized, segments)
    return [
        (
            seg.kind,
            seg.start,
            seg.stop,
            set(
                np.flatnonzero(
                    (injected != standardized)[seg.start : seg.stop].any(axis=0)
                ).tolist()
            ),
        )
        for seg in segments
    ]


def _followed_before(model: TimeAwareModel, X: NDArray[np.float64], t: int) -> Followed:
    """The frame's followed state before reading ``t`` (one segment from the start)."""
    alpha = follow_alpha(model.follow_memory)
    return follow_rows(X[:t], model.follow_start_, alpha, model.follow_floor_)[1]


def test_serving_window_gives_the_training_frame_numbers(
    series: TimeSeriesDataset, trained: TrainedTimeAware
) -> None:
    """A window of the frame, with the frame's followed state before its scored readings,
    scores them as the frame does."""
    model = trained.model
    assert model.follow_memory > 0
    assert model.kinds_[-1] == "follow"
    assert series.n_segments == 1
    X = series.data.X
    frame = model.score_frame(X, series.segments)
    w = model.history_needed
    for t in (w - 1, 777, 4321, N_ROWS - 1):
        window = slice(t - w + 1, t + 1)
        state = _followed_before(model, X, t)
        one = model.score_window(series.timestamps[window], X[window], follow=state)
        assert not one.warming_up[0]
        assert one.anomaly_score[0] == pytest.approx(frame.anomaly_score[t], abs=1e-9)
        assert one.is_anomaly[0] == frame.is_anomaly[t]
        assert one.contributions(0) == frame.contributions(t)
    assert one.follow == frame.follow  # the last reading's: the state after the frame
    # every reading of a longer window at once: the last 50 readings
    rows = slice(N_ROWS - 50 - w + 1, N_ROWS)
    state = _followed_before(model, X, N_ROWS - 50)
    many = model.score_window(series.timestamps[rows], X[rows], last=50, follow=state)
    np.testing.assert_allclose(many.anomaly_score, frame.anomaly_score[-50:], atol=1e-9)
    # with a state, readings before the window change nothing
    longer = model.score_window(series.timestamps[:N_ROWS], X, last=50, follow=state)
    np.testing.assert_allclose(longer.anomaly_score, many.anomaly_score, atol=1e-12)
    # without one, the training state at the first reading used (the last w - 1 + 50)
    fresh = model.score_window(series.timestamps[:N_ROWS], X, last=50)
    start = model.score_window(series.timestamps[rows], X[rows], last=50)
    np.testing.assert_array_equal(fresh.anomaly_score, start.anomaly_score)
    assert fresh.follow == start.follow != frame.follow


def test_short_or_gapped_windows_warm_up(
    series: TimeSeriesDataset, trained: TrainedTimeAware
) -> None:
    model = trained.model
    w = model.history_needed
    short = model.score_window(series.timestamps[: w - 1], series.data.X[: w - 1], last=None)
    assert short.warming_up.all()
    assert short.shares.shape == (w - 1, len(SENSOR_CHANNELS))
    times = series.timestamps[: 2 * w].copy()
    times[w:] += 10 * series.median_interval  # a gap restarts the window
    out = model.score_window(times, series.data.X[: 2 * w], last=None)
    assert not out.warming_up[w - 1]
    assert out.warming_up[w : 2 * w - 1].all()
    assert not out.warming_up[2 * w - 1]  # w readings after the gap: a full window again


def test_bad_windows_raise_value_errors(trained: TrainedTimeAware) -> None:
    model = trained.model
    values = np.zeros((40, len(SENSOR_CHANNELS)))
    times = np.arange(40, dtype=np.float64) * 300.0
    with pytest.raises(ValueError, match="8 channels"):
        model.score_window(times, values[:, :3])
    bad = times.copy()
    bad[7] = bad[6]
    with pytest.raises(ValueError, match="reading 7: timestamp not after"):
        model.score_window(bad, values)
    nan = values.copy()
    nan[3, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        model.score_window(times, nan)


def test_outputs_are_well_formed(series: TimeSeriesDataset, trained: TrainedTimeAware) -> None:
    out = trained.model.score_frame(series.data.X[:3000], series.segments[:3000])
    np.testing.assert_allclose(out.shares.sum(axis=1), 1.0)
    assert (out.shares >= 0).all()
    assert ((out.severity >= 0) & (out.severity < 1)).all()
    assert (out.severity[~out.is_anomaly] == 0).all()
    order = np.argsort(out.anomaly_score[out.is_anomaly])
    assert np.all(np.diff(out.severity[out.is_anomaly][order]) >= 0)
    first = out.contributions(int(np.argmax(out.anomaly_score)), top_k=2)
    assert len(first) == 2
    shares = [v["share"] for v in first.values()]
    assert shares == sorted(shares, reverse=True)


@pytest.mark.parametrize(
    ("kind", "min_detected", "why"),
    [
        ("stuck_sensor", 1.0, "flat for"),
        ("level_shift", 0.9, ""),
        ("correlation_break", 0.7, "relation"),
    ],
)
def test_flags_lasting_anomalies_with_the_right_top_contributor(
    series: TimeSeriesDataset,
    trained: TrainedTimeAware,
    kind: str,
    min_detected: float,
    why: str,
) -> None:
    out = trained.model.score_frame(series.data.X, series.segments)
    top = out.top_channel()
    events = [e for e in _affected_channels() if e[0] == kind and e[1] >= trained.model.window]
    detected, right = 0, 0
    for _, start, stop, channels in events:
        hits = np.flatnonzero(out.is_anomaly[start:stop]) + start
        if not len(hits):
            continue
        detected += 1
        first = int(hits[0])
        right += int(top[first]) in channels
        if int(top[first]) in channels and why:
            name = SENSOR_CHANNELS[int(top[first])]
            assert why in out.contributions(first)[name]["why"]
    assert detected >= min_detected * len(events), (kind, detected, len(events))
    assert right >= 0.9 * detected, (kind, right, detected)


def test_single_channel_model_has_no_relation_features() -> None:
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.normal(size=(400, 1)), axis=0)
    model = TimeAwareModel(window=10, short=3).fit(values, channels=["temp"], median_interval=60.0)
    assert model.kinds_ == ("level", "flat", "shift")
    assert model.feature_names_ == ["temp:level", "temp:flat", "temp:shift"]
    stuck: NDArray[np.float64] = np.vstack([values[:30], np.repeat(values[29:30], 8, axis=0)])
    out = model.score_window(np.arange(38) * 60.0, stuck)
    assert out.is_anomaly[0]
    assert out.contributions(0)["temp"]["why"] == "flat for 9 readings"


def test_artifact_round_trip(
    tmp_path: Path, series: TimeSeriesDataset, trained: TrainedTimeAware
) -> None:
    from anomaly_api.artifacts import (
        ArtifactError,
        TimeAwareArtifact,
        load_any_artifact,
        load_artifact,
        read_manifest,
    )
    from anomaly_api.training.time_aware import build_time_aware_manifest

    manifest = build_time_aware_manifest(
        trained, series, version="ta-1", created_at=datetime.now(UTC)
    )
    save_artifact(trained.model, manifest, tmp_path)
    loaded = load_any_artifact(tmp_path)
    assert isinstance(loaded, TimeAwareArtifact)
    info = read_manifest(tmp_path, "ta-1").time_aware
    assert info is not None
    assert info.window == trained.model.window
    assert info.history_readings == trained.model.window
    assert info.median_interval_seconds == 300.0
    assert info.features == list(trained.model.kinds_)
    rows = slice(1000, 1000 + trained.model.window)
    before = trained.model.score_window(series.timestamps[rows], series.data.X[rows], last=5)
    after = loaded.model.score_window(series.timestamps[rows], series.data.X[rows], last=5)
    np.testing.assert_array_equal(before.anomaly_score, after.anomaly_score)
    # the point-wise loader says clearly that this model scores streams
    with pytest.raises(ArtifactError, match="time-aware"):
        load_artifact(tmp_path)


def test_old_manifests_still_load(tiny_artifacts_dir: Path) -> None:
    from anomaly_api.artifacts import Artifact, load_any_artifact

    loaded = load_any_artifact(tiny_artifacts_dir)
    assert isinstance(loaded, Artifact)
    assert loaded.manifest.time_aware is None


def test_fast_pointwise_scorer_gives_the_same_warm_up_scores(
    series: TimeSeriesDataset, trained: TrainedTimeAware
) -> None:
    import pickle

    from anomaly_api.detection.fast import compile_scorer

    model = pickle.loads(pickle.dumps(trained.model))
    rows = slice(0, model.window - 1)
    reference = model.score_window(series.timestamps[rows], series.data.X[rows], last=None)
    model.set_pointwise_scorer(compile_scorer(model.pointwise_, "numpy"))
    fast = model.score_window(series.timestamps[rows], series.data.X[rows], last=None)
    assert fast.warming_up.all()
    np.testing.assert_allclose(fast.anomaly_score, reference.anomaly_score, rtol=1e-9, atol=1e-9)
    assert "_pointwise_scorer" not in pickle.loads(pickle.dumps(model)).__dict__


def test_top_k_detector_adds_up_the_largest_features() -> None:
    from anomaly_api.detection.time_aware import MaxZDetector, detector_member_names

    z = np.array([[3.0, -4.0, 0.0, 1.0, 2.0], [0.5, 0.5, 0.5, 0.5, 0.5]])
    top4 = MaxZDetector(top_k=4)
    np.testing.assert_allclose(top4.detector_scores(z)[:, 0], [-np.sqrt(30.0), -1.0])
    np.testing.assert_allclose(MaxZDetector().detector_scores(z)[:, 0], [-4.0, -0.5])
    assert detector_member_names(top4) == ("top4_z",)
    assert detector_member_names(MaxZDetector()) == ("max_z",)


def test_max_z_detector_sets_only_its_parameters_in_init() -> None:
    """scikit-learn's convention: ``__init__`` stores its parameters and nothing else."""
    from sklearn.base import clone

    from anomaly_api.detection.time_aware import MaxZDetector

    detector = MaxZDetector(contamination=0.02, top_k=4)
    assert vars(detector) == detector.get_params()
    assert detector.get_params() == {"contamination": 0.02, "top_k": 4, "relation_columns": None}
    assert detector.min_votes == clone(detector).min_votes == 1


def test_channels_are_scaled_by_the_one_robust_scaling(
    series: TimeSeriesDataset, trained: TrainedTimeAware
) -> None:
    from anomaly_api.detection.scaling import fit_robust_scaling

    center, scale, _ = fit_robust_scaling(series.data.X[trained.fit_rows])
    np.testing.assert_array_equal(trained.model.center_, center)
    np.testing.assert_array_equal(trained.model.scale_, scale)


def test_gate_caps_each_mean_by_its_newest_reading() -> None:
    from anomaly_api.detection.time_aware import gate_means

    kinds = ("level", "shift", "residual", "residual_mean")
    # one channel per row: (level, shift, residual, residual_mean)
    z = np.array(
        [
            [3.0, 4.0, -2.0, -5.0],  # backed: shift kept; residual_mean capped at 2 * 2
            [0.5, 4.0, 1.0, -5.0],  # shift capped at 2 * 0.5; the residual points the other way
            [-1.0, 4.0, 0.0, 0.0],  # the newest reading points the other way: shift 0
            [np.nan, np.nan, np.nan, np.nan],  # no full window
        ]
    )
    gated = gate_means(z, kinds, 1, 2.0)
    expected = np.array(
        [[3.0, 4.0, -2.0, -4.0], [0.5, 1.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [np.nan] * 4]
    )
    np.testing.assert_array_equal(gated, expected)
    assert gate_means(z, ("level", "flat"), 2, 2.0) is not z  # nothing to gate: a copy


_Z = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, np.nan, np.inf, -np.inf]),
    st.floats(allow_nan=True, allow_infinity=True),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_Z, min_size=24, max_size=24), st.sampled_from([0.5, 2.0, 3.0]))
def test_one_gated_row_is_the_same_numbers_as_in_a_frame(values: list[float], gate: float) -> None:
    """One row (a stream's newest reading) is gated with plain floats, several with NumPy:
    the same numbers, NaN, infinities and the sign of every zero included."""
    from anomaly_api.detection.time_aware import gate_means

    kinds = ("level", "shift", "residual", "residual_mean", "lag_residual", "lag_residual_mean")
    row = np.array([values])
    with np.errstate(all="ignore"):
        alone = gate_means(row, kinds, 4, gate)
        in_frame = gate_means(np.vstack([row, -row, row]), kinds, 4, gate)[:1]
    assert alone.tobytes() == in_frame.tobytes()


def test_gated_z_is_the_plain_cap_of_the_ungated_z(series: TimeSeriesDataset) -> None:
    X, segments = series.data.X[:3000], series.segments[:3000]
    plain = TimeAwareModel(mean_gate=None).fit(X, segments, channels=list(SENSOR_CHANNELS))
    gated = TimeAwareModel(mean_gate=2.0).fit(X, segments, channels=list(SENSOR_CHANNELS))
    _, z_plain, valid = plain.window_z(X, segments)
    _, z_gated, _ = gated.window_z(X, segments)
    kinds = plain.kinds_
    expected = z_plain.copy()
    for row in np.flatnonzero(valid)[::50]:
        for c in range(len(SENSOR_CHANNELS)):
            for mean_kind, newest_kind in (("shift", "level"), ("residual_mean", "residual")):
                m = c * len(kinds) + kinds.index(mean_kind)
                newest = z_plain[row, c * len(kinds) + kinds.index(newest_kind)]
                mean = z_plain[row, m]
                along = newest if mean >= 0 else -newest
                capped = min(abs(mean), 2.0 * max(along, 0.0))
                expected[row, m] = capped if mean >= 0 else -capped
        np.testing.assert_allclose(z_gated[row], expected[row], rtol=1e-12, atol=1e-12)
    # the features themselves and their standardisation are unchanged by the gate
    np.testing.assert_allclose(gated.feature_scale_, plain.feature_scale_)
    # a model saved before the gate existed has no mean_gate: it scores as before
    del gated.mean_gate
    np.testing.assert_array_equal(gated.window_z(X, segments)[1], z_plain)


def test_one_new_reading_is_scored_as_the_general_path_does_bit_for_bit(
    series: TimeSeriesDataset, trained: TrainedTimeAware
) -> None:
    """``score_window(last=1)`` of a full window takes the newest-reading path; answering
    every reading of the same window (``last=None``: warming-up rows, so the general
    features and decision) must give its last reading the very same numbers and words."""
    model = trained.model
    w = model.history_needed
    frame = model.score_frame(series.data.X, series.segments)
    flagged = np.flatnonzero(frame.is_anomaly[w:]) + w
    ends = [w - 1, 2000, 5000, *flagged[:: max(1, len(flagged) // 15)].tolist()]
    assert any(frame.is_anomaly[t] for t in ends)
    for t in ends:
        window = slice(t - w + 1, t + 1)
        ts, X = series.timestamps[window], series.data.X[window]
        one = model.score_window(ts, X)
        every = model.score_window(ts, X, last=None)
        assert every.warming_up[:-1].all()
        assert not every.warming_up[-1]
        assert not one.warming_up[0]
        for name in ("anomaly_score", "severity", "confidence", "shares", "deviations"):
            assert getattr(one, name)[0].tobytes() == getattr(every, name)[-1].tobytes(), name
        assert one.is_anomaly[0] == every.is_anomaly[-1] == frame.is_anomaly[t]
        n_members = one.votes.shape[1]
        assert one.votes[0].tolist() == every.votes[-1, :n_members].tolist()
        assert not every.votes[-1, n_members:].any()
        assert one.contributions(0) == every.contributions(w - 1)
        assert one.contributions(0, 3) == every.contributions(w - 1, 3)


def _same_newest_answer(
    model: TimeAwareModel, ts: NDArray[np.float64], X: NDArray[np.float64]
) -> None:
    """The newest-reading path's answer to a full window is the general path's last one."""
    one = model.score_window(ts, X)
    every = model.score_window(ts, X, last=None)
    for name in ("anomaly_score", "severity", "confidence", "shares", "deviations"):
        assert getattr(one, name)[0].tobytes() == getattr(every, name)[-1].tobytes(), name
    assert one.is_anomaly[0] == every.is_anomaly[-1]
    assert one.votes[0].tolist() == every.votes[-1, : one.votes.shape[1]].tolist()
    assert one.contributions(0) == every.contributions(len(X) - 1)


@settings(max_examples=60, deadline=None)
@given(
    end=st.integers(min_value=0, max_value=3000),
    channel=st.integers(min_value=0, max_value=len(SENSOR_CHANNELS) - 1),
    change=st.sampled_from(["none", "spike", "flat", "shift", "zero", "huge"]),
    size=st.floats(min_value=-50.0, max_value=50.0),
)
def test_the_newest_reading_path_answers_any_window_as_the_general_path(
    series: TimeSeriesDataset,
    trained: TrainedTimeAware,
    end: int,
    channel: int,
    change: str,
    size: float,
) -> None:
    """Windows of the series with a change of one channel (a spike of the newest reading,
    a frozen run, a level shift, zeros, a value far out) score alike on both paths."""
    model = trained.model
    w = model.history_needed
    window = slice(end, end + w)
    ts, X = series.timestamps[window], series.data.X[window].copy()
    if change == "spike":
        X[-1, channel] += size
    elif change == "flat":
        X[-int(abs(size)) % w - 2 :, channel] = X[-1, channel]
    elif change == "shift":
        X[-model.short :, channel] += size
    elif change == "zero":
        X[:, channel] = 0.0
    elif change == "huge":
        X[-1, channel] = size * 1e150
    with np.errstate(all="ignore"):
        _same_newest_answer(model, ts, X)


def test_a_gap_in_the_window_still_warms_up(
    series: TimeSeriesDataset, trained: TrainedTimeAware
) -> None:
    model = trained.model
    w = model.history_needed
    ts = series.timestamps[:w].copy()
    ts[w // 2 :] += 10 * model.max_gap_factor * model.median_interval_
    out = model.score_window(ts, series.data.X[:w])
    assert out.warming_up[0]
    assert out.votes.shape[1] == 3


@pytest.fixture(scope="module")
def lag_trained(series: TimeSeriesDataset) -> TrainedTimeAware:
    """The synthetic stream with the dynamic PCA's features added, W 30."""
    from anomaly_api.detection.windows import DEFAULT_FEATURES, LAG_KINDS
    from anomaly_api.training.time_aware import TimeAwareSettings

    return fit_time_aware(
        series,
        TimeAwareSettings(
            window=30, features=DEFAULT_FEATURES + LAG_KINDS, seed=SEED, follow_memory=200
        ),
    )


def test_the_dynamic_pca_is_fitted_deterministically(
    series: TimeSeriesDataset, lag_trained: TrainedTimeAware
) -> None:
    model = lag_trained.model
    n_channels = len(model.channels_)
    assert model.lag_projector_ is not None
    assert model.lag_projector_.shape == (n_channels, n_channels * model.lags)
    assert 1 <= model.lag_components_ < n_channels * model.lags
    assert "rpm:lag_residual" in model.feature_names_
    again = TimeAwareModel(**model.get_params()).fit(
        series.data.X,
        series.segments,
        lag_trained.fit_rows,
        channels=model.channels_,
        median_interval=model.median_interval_,
    )
    assert again.lag_projector_ is not None
    assert again.lag_projector_.tobytes() == model.lag_projector_.tobytes()
    # each channel's lag-0 residual has unit spread on the lagged vectors it was fitted on
    from anomaly_api.detection.windows import lag_residuals

    residuals = lag_residuals(model.scale(series.data.X), model.lags, model.lag_projector_)
    fitted = lag_trained.fit_rows & np.isfinite(residuals).all(axis=1)
    np.testing.assert_allclose(residuals[fitted].std(axis=0), 1.0, rtol=0.05)


def test_lag_features_score_one_new_reading_bit_for_bit(
    series: TimeSeriesDataset, lag_trained: TrainedTimeAware
) -> None:
    model = lag_trained.model
    w = model.history_needed
    frame = model.score_frame(series.data.X, series.segments)
    flagged = np.flatnonzero(frame.is_anomaly[w:]) + w
    ends = [w - 1, 3000, *flagged[:: max(1, len(flagged) // 10)].tolist()]
    for t in ends:
        window = slice(t - w + 1, t + 1)
        ts, X = series.timestamps[window], series.data.X[window]
        # the frame's followed state, before the window's first reading and before t
        first = _followed_before(model, series.data.X, t - w + 1)
        before = _followed_before(model, series.data.X, t)
        one = model.score_window(ts, X, follow=before)
        every = model.score_window(ts, X, last=None, follow=first)
        for name in ("anomaly_score", "severity", "confidence", "shares", "deviations"):
            assert getattr(one, name)[0].tobytes() == getattr(every, name)[-1].tobytes(), name
        assert one.follow == every.follow
        assert one.contributions(0) == every.contributions(w - 1)
        assert one.anomaly_score[0] == pytest.approx(frame.anomaly_score[t], abs=1e-9)
        np.testing.assert_allclose(one.shares[0], frame.shares[t], atol=1e-9)


def test_a_lagged_relation_break_is_seen_and_named_in_words() -> None:
    """Channel 1 repeats channel 0 two readings late; when it stops lagging, every reading
    and every same-time relation stays plausible: only the dynamic PCA's residual sees it."""
    rng = np.random.default_rng(5)
    driver = rng.normal(size=3000)
    X = np.column_stack([driver, np.roll(driver, 2), rng.normal(size=3000)])
    X += 0.05 * rng.normal(size=X.shape)
    broken = X[2000:].copy()
    broken[500:520, 1] = broken[500:520, 0]  # in step with its driver
    lagged = TimeAwareModel(
        window=20, features=("level", "residual", "lag_residual", "lag_residual_mean"), lags=4
    ).fit(X[:2000])
    out = lagged.score_frame(broken)
    assert out.is_anomaly[500:520].mean() > 0.5
    assert out.is_anomaly[100:480].mean() < 0.05
    assert out.top_channel()[510] in (0, 1)
    words = out.contributions(510)[lagged.channels_[1]]["why"]
    assert "relation to the recent readings of every sensor" in words
    static = TimeAwareModel(window=20, features=("level", "residual")).fit(X[:2000])
    assert static.score_frame(broken).is_anomaly[500:520].mean() < 0.2


def test_models_saved_before_lags_existed_load_as_they_score(
    lag_trained: TrainedTimeAware, trained: TrainedTimeAware
) -> None:
    import pickle

    state = trained.model.__getstate__()
    del state["lags"]
    state.pop("lag_projector_", None)
    old = TimeAwareModel.__new__(TimeAwareModel)
    old.__setstate__(state)
    assert old.get_params()["lags"] == 1
    X = np.random.default_rng(0).normal(size=(80, len(old.channels_)))
    np.testing.assert_array_equal(
        old.score_frame(X).anomaly_score, trained.model.score_frame(X).anomaly_score
    )
    again = pickle.loads(pickle.dumps(lag_trained.model))
    assert again.lags == lag_trained.model.lags


def test_too_many_lags_or_too_few_vectors_are_refused() -> None:
    X = np.random.default_rng(1).normal(size=(200, 3))
    with pytest.raises(ValueError, match="lags must be in"):
        TimeAwareModel(window=10, short=3, features=("lag_residual",), lags=9).fit(X)
    with pytest.raises(ValueError, match="lagged vectors of normal readings"):
        TimeAwareModel(window=30, short=3, features=("lag_residual",), lags=28).fit(X[:80])


def _with_a_constant_channel(n: int = 3000) -> NDArray[np.float64]:
    rng = np.random.default_rng(5)
    load = np.cumsum(rng.normal(scale=0.05, size=n))
    return np.column_stack(
        [
            load + rng.normal(scale=0.3, size=n),
            0.8 * load + rng.normal(scale=0.3, size=n),
            np.full(n, 1500.0),
        ]
    )


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"detector": "max_z", "relations": "pca"},
        {"detector": "ensemble"},
        {"features": ("level", "flat", "shift", "residual", "lag_residual")},
    ],
)
def test_a_channel_constant_in_training_stays_quiet_while_constant_and_flags_a_move(
    options: dict[str, object],
) -> None:
    X = _with_a_constant_channel()
    fit = np.arange(len(X)) < 2000
    channels = ["rpm", "flow", "setpoint"]
    model = TimeAwareModel(window=20, short=5, **options).fit(  # type: ignore[arg-type]
        X, None, fit, channels=channels, median_interval=60.0
    )
    assert model.scale_rule_.tolist() == ["iqr", "iqr", "floor"]
    assert model.scale_[2] == pytest.approx(1500.0 * 1e-6)
    without = TimeAwareModel(
        window=20, short=5, **options
    ).fit(  # type: ignore[arg-type]
        X[:, :2], None, fit, channels=channels[:2], median_interval=60.0
    )
    quiet = model.score_frame(X).is_anomaly[2000:]
    # while it stays constant the channel adds nothing: no more flags than without it
    assert quiet.mean() <= without.score_frame(X[:, :2]).is_anomaly[2000:].mean()
    moved = X.copy()
    moved[2500:2510, 2] = 1500.5
    out = model.score_frame(moved)
    assert out.is_anomaly[2500:2510].all()
    assert out.contributions(2505, 1)["setpoint"]["share"] > 0.99
    # the serving path answers the newest reading with the same numbers
    ts = np.arange(len(X), dtype=np.float64) * 60.0
    one = model.score_window(ts[2486:2506], moved[2486:2506])
    assert one.anomaly_score[0] == out.anomaly_score[2505]
