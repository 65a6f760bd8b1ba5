"""``ModelMonitor``'s service alarms: the same as the alarm policy over every reading."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from anomaly_api.config import Settings
from anomaly_api.monitoring import AlarmState
from anomaly_api.service.model_monitor import ModelMonitor, service_alarm_policy


def _batch(flags: list[bool]) -> SimpleNamespace:
    """What ``observe`` reads of a ``ScoredBatch`` (no model attached: no drift window)."""
    array = np.array(flags, dtype=bool)
    return SimpleNamespace(
        model_version="v",
        X=np.zeros((len(flags), 2)),
        rows=len(flags),
        n_anomalies=int(array.sum()),
        anomaly_flags=lambda: array,
    )


def test_normal_batches_count_their_readings_before_the_next_evaluation(
    tmp_path: Path,
) -> None:
    """Batches without anomalies only add their readings to the count the next
    evaluation starts from: the alarms are those of the policy over all the readings."""
    settings = Settings(
        artifacts_dir=tmp_path, alarm_min_anomalies=2, alarm_window=4, alarm_cooldown=3
    )
    monitor = ModelMonitor(settings)
    batches = [[False], [True], [False] * 3, [True], [False, True], [False] * 5, [True, True]]
    batches += [[False] * 2, [True], [False], [True]]
    for flags in batches:
        monitor.observe(_batch(flags))  # type: ignore[arg-type]
    every = np.concatenate([np.array(flags, dtype=bool) for flags in batches])
    alarms, state = service_alarm_policy(settings).evaluate(AlarmState(), every)
    assert monitor.service_alarms == int(alarms.sum()) == 3
    assert monitor._alarm_state.seen + monitor._unevaluated == state.seen == len(every)
