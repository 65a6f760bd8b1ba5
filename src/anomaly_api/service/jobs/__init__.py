"""Training jobs: a version trained in a worker process, tracked in a job table.

``records``: what a job is; ``store``: the table (process memory, or Redis shared by the
replicas); ``worker``: the child process that trains; ``runner``: the bounded queue that
starts workers, follows them and publishes what they trained.
"""

from anomaly_api.service.jobs.records import JobRecord, JobStatus
from anomaly_api.service.jobs.runner import (
    JobCounts,
    JobNotFoundError,
    JobQueueFullError,
    JobRunner,
    TrainingUnavailableError,
    runner_from_settings,
)

__all__ = [
    "JobCounts",
    "JobNotFoundError",
    "JobQueueFullError",
    "JobRecord",
    "JobRunner",
    "JobStatus",
    "TrainingUnavailableError",
    "runner_from_settings",
]
