"""Schemathesis against the service's own OpenAPI schema, over HTTP to a real server.

Every operation, a bounded number of generated cases each (valid and invalid data):
no response may be a 5xx, and every response must match the schema (status code
documented, content type and body as declared).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from anomaly_api.api.app import create_app
from anomaly_api.config import Settings
from anomaly_api.testing import running_server

MAX_EXAMPLES = 40


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory, tiny_artifacts_dir: Path) -> Iterator[str]:
    """A real server process serving a private copy of the tiny model: the fuzzed
    `POST /admin/thresholds` and `/admin/reload` calls write revisions and move LATEST."""
    workdir = tmp_path_factory.mktemp("fuzz")
    artifacts = workdir / "artifacts"
    shutil.copytree(tiny_artifacts_dir, artifacts)
    with running_server(workdir, {"ANOMALY_ARTIFACTS_DIR": str(artifacts)}) as server:
        yield server.url


# The schema the server publishes, built in-process at collection (no model is loaded for
# that), so schemathesis can make one test per operation.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@schema.parametrize()
# schemathesis's own strategies call the global `random` (generation/dictionaries.py,
# `random.random() >= binding.probability`), which Hypothesis reports as a deprecation and
# pyproject's `filterwarnings = ["error"]` turns into a failure of whichever case drew it.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors_and_responses_match_schema(
    case: schemathesis.Case, server_url: str
) -> None:
    case.call_and_validate(
        base_url=server_url,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
