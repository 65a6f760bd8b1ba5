"""A stream's adaptive state in both stores: stored with the alarm state, and a feedback's
change (a new ``revision``) never overwritten by an append scored from the state before it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from anomaly_api.monitoring.adaptation import AdaptationModel, AdaptiveState, widen
from anomaly_api.monitoring.alarms import AlarmPolicy, AlarmState
from anomaly_api.service.stream_alarms import Adaptation, StreamAlarms
from anomaly_api.service.streams import StoredAlarm, StreamStore

MODEL = AdaptationModel(reference=-1.0, spread=0.5)
POLICY = AlarmPolicy(k=2, window=3, cooldown=2)


async def _feedback(store: StreamStore, sid: str) -> StoredAlarm:
    """What a ``false_alarm`` label writes: the widened state, the next revision."""
    stored = await store.read_alarm(sid)
    assert stored is not None
    widened = replace(
        stored,
        adaptive=widen(MODEL, stored.adaptive or AdaptiveState(), "e-1", 0.5, [("a", 1.0)]),
        revision=stored.revision + 1,
    )
    status, _ = await store.update_alarm(
        sid, widened, expected_seen=stored.state.seen, expected_revision=stored.revision
    )
    assert status == "ok"
    return widened


async def test_an_update_from_an_older_revision_is_sent_back(store: StreamStore) -> None:
    window = await store.append("s", [1.0], [[0.5, 1.0]], window=4, model_key="m1")
    assert window.alarm is not None
    widened = await _feedback(store, "s")
    assert await store.read_alarm("s") == widened  # round-trips through the store
    older = replace(window.alarm, state=AlarmState(seen=1))  # scored before the feedback
    status, current = await store.update_alarm("s", older, expected_seen=0)
    assert status == "behind"
    assert current == widened
    assert await store.read_alarm("s") == widened  # nothing overwritten


async def test_an_append_racing_a_feedback_keeps_the_widening(store: StreamStore) -> None:
    window = await store.append("r", [1.0], [[0.5, 1.0]], window=4, model_key="m1")
    widened = await _feedback(store, "r")  # lands between the append and its update
    shares = np.array([[1.0, 0.0]])  # carried by "a", the widened sensor
    adaptation = Adaptation(MODEL, np.array([0.3]), np.zeros(1, dtype=bool), shares, ("a", "b"))
    done = await StreamAlarms(store).evaluate_adapted(
        window, 1, np.array([True]), POLICY, inputs=None, adaptation=adaptation
    )
    assert done.stored.revision == widened.revision
    assert done.stored.adaptive is not None
    assert widened.adaptive is not None
    assert done.stored.adaptive.widenings == widened.adaptive.widenings
    assert done.flags.tolist() == [False]  # 0.3 is below the allowance of "a" (0.505)
    assert await store.read_alarm("r") == done.stored
