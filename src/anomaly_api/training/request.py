"""One training request, as ``anomaly-api train`` and ``POST /models/{name}/versions`` take it.

Both front ends build a ``TrainingRequest``, check it with ``check_request`` (the same
rules, each message naming the option in the front end's own spelling) and run it with
``run_training``: the CLI and the API train the same way, so the same data, options and
seed give the same model file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the pipelines import pandas, which a serving image leaves out
    from anomaly_api.training.pipeline import EnsembleConfig, Progress, TrainingResult
    from anomaly_api.training.time_aware import TimeAwareSettings, TimeAwareTrainingResult

__all__ = [
    "RequestError",
    "TrainingRequest",
    "check_columns",
    "check_request",
    "cli_flag",
    "ensemble_config",
    "parse_names",
    "run_training",
]

Spelling = Callable[[str], str]
"""How a front end writes an option's name in its messages (``target_fpr`` -> ...)."""


class RequestError(ValueError):
    """A combination of options that cannot train; the message names the options."""


def cli_flag(name: str) -> str:
    """``target_fpr`` -> ``--target-fpr``."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class TrainingRequest:
    """Every option of ``anomaly-api train`` but where the data comes from and where the
    version goes; ``window`` set trains a time-aware model."""

    features: tuple[str, ...] | None = None
    label_column: str | None = None
    seed: int = 42
    version: str | None = None
    target_fpr: float | None = None
    detectors: tuple[str, ...] | None = None
    min_votes: int | None = None
    contamination: float | None = None
    window: int | None = None
    timestamp_column: str | None = None
    stream_column: str | None = None
    max_gap_factor: float = 3.0
    window_detector: str | None = None
    """The time-aware model's detector (``TimeAwareSettings.detector``; None: its default)."""
    follow_memory: int | None = None
    """The time-aware model's ``follow`` feature memory in readings, 0 for none
    (``TimeAwareSettings.follow_memory``; None: its default)."""


def parse_names(text: str | None) -> tuple[str, ...] | None:
    """``"a, b,c"`` -> ``("a", "b", "c")``; None stays None (an empty list is kept empty)."""
    if text is None:
        return None
    return tuple(name.strip() for name in text.split(",") if name.strip())


def ensemble_config(request: TrainingRequest, spell: Spelling = cli_flag) -> EnsembleConfig:
    """The members, votes and contamination a point-wise request asks for."""
    from anomaly_api.detection import validate_members
    from anomaly_api.training.pipeline import EnsembleConfig

    default = EnsembleConfig()
    names = default.detectors if request.detectors is None else request.detectors
    votes = default.min_votes if request.min_votes is None else request.min_votes
    if request.detectors is not None and request.min_votes is None:
        votes = min(votes, len(names))
    try:
        validate_members(names, votes)
    except ValueError as exc:
        raise RequestError(f"{exc} ({spell('detectors')} / {spell('min_votes')})") from exc
    share = default.contamination if request.contamination is None else request.contamination
    if not 0.0 < share < 0.5:
        raise RequestError(
            f"{spell('contamination')} must be between 0 and 0.5 (exclusive), got {share:g}"
        )
    return EnsembleConfig(detectors=names, min_votes=votes, contamination=share)


def check_request(request: TrainingRequest, *, has_data: bool, spell: Spelling = cli_flag) -> None:
    """Refuse what cannot train before any data is read (``RequestError``)."""
    if request.features is not None and not request.features:
        raise RequestError(f"{spell('features')} is empty; give column names separated by commas")
    fpr = request.target_fpr
    if fpr is not None and not 0.0 < fpr < 1.0:
        raise RequestError(
            f"{spell('target_fpr')} must be between 0 and 1 (exclusive), got {fpr:g}"
        )
    _check_follow_memory(request, spell)
    if request.window is None:
        if request.window_detector is not None:
            raise RequestError(f"{spell('window_detector')} needs {spell('window')}")
        if request.timestamp_column is not None or request.stream_column is not None:
            raise RequestError(
                f"{spell('timestamp_column')} and {spell('stream_column')} need {spell('window')}"
            )
        if (request.detectors, request.min_votes, request.contamination) != (None, None, None):
            ensemble_config(request, spell)  # the defaults need no check (nor the model code)
        if not has_data and (request.features is not None or request.label_column is not None):
            raise RequestError(
                f"{spell('features')} and {spell('label_column')} need {spell('data')}"
            )
        return
    if request.window < 4:
        raise RequestError(f"{spell('window')} must be at least 4, got {request.window}")
    if request.max_gap_factor <= 1.0:
        raise RequestError(
            f"{spell('max_gap_factor')} must be above 1, got {request.max_gap_factor:g}"
        )
    _check_window_detector(request.window_detector, spell)
    named = (request.features, request.label_column, request.timestamp_column)
    if not has_data and any(option is not None for option in named):
        raise RequestError(
            f"{spell('features')}, {spell('label_column')} and {spell('timestamp_column')} "
            f"need {spell('data')}"
        )
    if has_data and request.timestamp_column is None:
        raise RequestError(
            f"{spell('window')} with {spell('data')} needs {spell('timestamp_column')}"
        )


def _check_follow_memory(request: TrainingRequest, spell: Spelling) -> None:
    """Refuse a follow memory without a window, or below 0."""
    memory = request.follow_memory
    if memory is None:
        return
    if request.window is None:
        raise RequestError(f"{spell('follow_memory')} needs {spell('window')}")
    if memory < 0:
        raise RequestError(
            f"{spell('follow_memory')} must be 0 (off) or a positive number of readings, "
            f"got {memory}"
        )


def _check_window_detector(name: str | None, spell: Spelling) -> None:
    """Refuse a window detector the time-aware model does not have, naming those it has."""
    from anomaly_api.detection.time_aware import DETECTOR_CHOICES

    if name is not None and name not in DETECTOR_CHOICES:
        raise RequestError(
            f"{spell('window_detector')} must be one of {', '.join(DETECTOR_CHOICES)}, got {name!r}"
        )


def check_columns(request: TrainingRequest, columns: list[str], spell: Spelling = cli_flag) -> None:
    """Refuse a request naming a column the data does not have (``RequestError``)."""
    named = [("features", name) for name in request.features or ()] + [
        (option, getattr(request, option))
        for option in ("label_column", "timestamp_column", "stream_column")
        if getattr(request, option) is not None
    ]
    for option, name in named:
        if name not in columns:
            raise RequestError(
                f"column {name!r} ({spell(option)}) is not in the data; its columns are {columns}"
            )


def time_aware_settings(request: TrainingRequest) -> TimeAwareSettings:
    """What a time-aware request trains with (the short window follows the window)."""
    from anomaly_api.detection.time_aware import DEFAULT_DETECTOR
    from anomaly_api.training.time_aware import TimeAwareSettings

    assert request.window is not None
    short = max(1, min(5, request.window - 2))
    return TimeAwareSettings(
        window=request.window,
        short=short,
        target_fpr=request.target_fpr,
        seed=request.seed,
        detector=request.window_detector or DEFAULT_DETECTOR,
        follow_memory=request.follow_memory or 0,
    )


def _features(request: TrainingRequest) -> list[str] | None:
    return None if request.features is None else list(request.features)


def run_training(
    request: TrainingRequest,
    data: Path | None,
    artifacts_dir: Path,
    *,
    progress: Progress,
    make_latest: bool = True,
) -> TrainingResult | TimeAwareTrainingResult:
    """Load ``data`` (the synthetic sensor data when None), train and save a new version
    in ``artifacts_dir``; ``DataError`` names what is wrong with the data."""
    if request.window is not None:
        return _run_time_aware(request, data, artifacts_dir, progress, make_latest)
    from anomaly_api.data.loading import load_dataset, synthetic_dataset
    from anomaly_api.training.pipeline import train_and_save

    if data is None:
        progress(f"generating synthetic sensor data (seed {request.seed})")
        dataset = synthetic_dataset(seed=request.seed)
    else:
        progress(f"loading {data}")
        dataset = load_dataset(data, features=_features(request), label_column=request.label_column)
    labels = "unlabelled" if dataset.y is None else f"{int(dataset.y.sum())} labelled anomalies"
    progress(f"{dataset.n_rows} rows, {len(dataset.feature_names)} features, {labels}")
    return train_and_save(
        dataset,
        artifacts_dir,
        seed=request.seed,
        target_fpr=request.target_fpr,
        version=request.version,
        progress=progress,
        config=ensemble_config(request),
        make_latest=make_latest,
    )


def _run_time_aware(
    request: TrainingRequest,
    data: Path | None,
    artifacts_dir: Path,
    progress: Progress,
    make_latest: bool,
) -> TimeAwareTrainingResult:
    from anomaly_api.data.timeseries import load_timeseries, synthetic_timeseries
    from anomaly_api.training.time_aware import train_time_aware_and_save

    if data is None:
        progress(f"generating synthetic sensor data (seed {request.seed}, one 5-minute stream)")
        ts = synthetic_timeseries(seed=request.seed, max_gap_factor=request.max_gap_factor)
    else:
        assert request.timestamp_column is not None  # check_request
        progress(f"loading {data}")
        ts = load_timeseries(
            data,
            timestamp_column=request.timestamp_column,
            stream_column=request.stream_column,
            max_gap_factor=request.max_gap_factor,
            features=_features(request),
            label_column=request.label_column,
        )
    progress(
        f"{ts.data.n_rows} readings, {len(ts.data.feature_names)} channels, "
        f"{ts.n_segments} segment(s), median interval {ts.median_interval:g} s"
    )
    if ts.merged_repeats or ts.skipped_back or ts.irregular:
        progress(
            f"merged {ts.merged_repeats} repeated timestamp(s), skipped "
            f"{ts.skipped_back} reading(s) whose clock stepped back; gap factor "
            f"{ts.max_gap_factor:g}" + (" (raised: irregular sampling)" if ts.irregular else "")
        )
    return train_time_aware_and_save(
        ts,
        artifacts_dir,
        time_aware_settings(request),
        version=request.version,
        progress=progress,
        make_latest=make_latest,
    )
