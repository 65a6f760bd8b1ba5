"""One training job as the job table keeps it and ``GET /jobs/{id}`` shows it."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["FINISHED", "JobRecord", "JobStatus"]

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class JobRecord(BaseModel):
    """A job's state; ``owner`` and ``heartbeat_at`` let any replica tell a live job from
    one whose replica stopped."""

    job_id: str
    model: str = Field(description="The named model the job adds a version to.")
    status: JobStatus = "queued"
    progress: str | None = Field(default=None, description="The latest step the job reported.")
    version: str | None = Field(default=None, description="The version it published.")
    metrics: dict[str, Any] | None = Field(
        default=None, description="The new version's metrics (as `anomaly-api train --json`)."
    )
    error: str | None = Field(default=None, description="Why it failed.")
    created_at: float = Field(default_factory=time.time, description="Unix time.")
    updated_at: float = Field(default_factory=time.time, description="Unix time.")
    owner: str = Field(description="The replica that runs it.")
    heartbeat_at: float = Field(
        default_factory=time.time, description="Unix time its replica last said it runs it."
    )

    @property
    def finished(self) -> bool:
        """Whether the job can no longer change."""
        return self.status in FINISHED

    def changed(self, **values: Any) -> JobRecord:
        """A copy with ``values`` and a fresh ``updated_at``."""
        return self.model_copy(update={**values, "updated_at": time.time()})
