"""Scoring without every answer's contributions (no sink publishes the answers) keeps
the events, the anomalies' answers and the last answer exactly as they were."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from anomaly_api.config import Settings
from anomaly_api.data.timeseries import synthetic_timeseries
from anomaly_api.service.event_answers import StreamEvent
from anomaly_api.watch.config import ModelRef
from anomaly_api.watch.scoring import Readings, WatchScorer
from factories import TIME_AWARE_SEED


async def test_only_unread_contributions_are_left_out(ta_artifacts_dir: Path) -> None:
    series = synthetic_timeseries(seed=TIME_AWARE_SEED + 1, n_rows=400)
    names = series.data.feature_names
    rows = [dict(zip(names, row, strict=True)) for row in series.data.X.tolist()]
    rows[200:230] = [{**row, names[2]: 50.0} for row in rows[200:230]]  # stuck far out
    stamps = [float(t) for t in series.timestamps.tolist()]
    scorer = WatchScorer(Settings(), ta_artifacts_dir)
    ref = ModelRef(name="default", alias="production")
    outcomes = {}
    for explain_all in (True, False):
        stream = f"explain-{explain_all}"
        outcomes[explain_all] = await scorer.score(
            "job", ref, Readings(stream, {}, stamps, rows), explain_all=explain_all
        )
    full, lean = ([a for r in outcomes[e].results for a in r.answers] for e in (True, False))
    events = [await scorer.streamplane.events(f"explain-{e}", limit=50) for e in (True, False)]
    assert [_without_id(e) for e in events[0].events] == [_without_id(e) for e in events[1].events]
    assert events[1].events
    ends = {
        len(r.answers) - 1 + sum(len(q.answers) for q in outcomes[False].results[:i])
        for i, r in enumerate(outcomes[False].results)
    }
    for i, (a, b) in enumerate(zip(full, lean, strict=True)):
        assert (a.anomaly_score, a.is_anomaly, a.alarm) == (b.anomaly_score, b.is_anomaly, b.alarm)
        if a.is_anomaly or i in ends:  # an anomaly, or the last answer of an append
            assert a.contributions == b.contributions
        else:
            assert not b.contributions
    assert any(not a.is_anomaly and a.contributions for a in full)
    await scorer.close()


def _without_id(event: StreamEvent) -> dict[str, Any]:
    found = asdict(event)
    found.pop("id")
    return found
