"""``GET /monitoring/drift``: this replica's input drift against the training data."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from anomaly_api.api.deps import MonitorDep

router = APIRouter(prefix="/monitoring", tags=["monitoring"])


@router.get("/drift")
async def read_drift(monitor: MonitorDep) -> dict[str, Any]:
    """Per feature: PSI, KS statistic and p-value over this replica's recent window, and a
    ``drifted`` flag. ``available: false`` with a ``reason`` when drift is not tracked
    (turned off, no model, or a model saved without a drift reference)."""
    return monitor.drift_report()
