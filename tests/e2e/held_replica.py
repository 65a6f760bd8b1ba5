"""``anomaly-api serve`` whose training workers hold their jobs (``jobs_holding``): a real
replica process a test can kill while one of its jobs is mid-way."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))  # spawned workers too

from jobs_holding import held_worker

from anomaly_api.api import app as app_module
from anomaly_api.cli.main import app as cli
from anomaly_api.config import Settings
from anomaly_api.service.jobs import JobRunner, runner_from_settings


def held_runner(settings: Settings) -> JobRunner:
    runner = runner_from_settings(settings)
    runner.worker = held_worker
    return runner


if __name__ == "__main__":  # spawned workers import this module again: serve only once
    app_module.runner_from_settings = held_runner  # type: ignore[attr-defined]
    cli()
