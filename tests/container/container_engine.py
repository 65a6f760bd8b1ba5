"""Finding a container engine for the container test, and driving a compose project.

CI (``CI=true``) has no Docker engine, but rootful podman works once the shared scripts
in ``../shared/container/`` have installed it, built the local stand-in base images and
started podman's Docker-compatible API and health-check loop. Those scripts are
idempotent (seconds when already done), so the test always runs them where they exist
and we are root. Then ``docker compose`` (Compose v2, talking to podman's API socket, or
to a real Docker engine on a laptop) is preferred, being what docs/deployment.md tells users to
run; ``podman-compose`` is the fallback. ``ANOMALY_COMPOSE=podman`` forces the fallback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_SCRIPTS = REPO_ROOT.parent / "shared" / "container"
SETUP_STEPS = (
    ("setup-podman.sh",),
    ("make-base-images.sh",),
    ("podman-services.sh", "start"),
)
IN_CI = os.environ.get("CI") == "true"
ACCESS_LOGGER = '"logger":"anomaly_api.access"'  # the JSON access log lines


class EngineUnavailableError(RuntimeError):
    """No container engine could be found or prepared; the message says why."""


def run(
    args: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    cwd: Path = REPO_ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run a command (from the repository root by default); on failure the error carries
    its output."""
    done = subprocess.run(
        list(args),
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited with {done.returncode}\n"
            f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}"
        )
    return done


def prepare_podman() -> None:
    """Run the shared setup scripts (install podman, base images, API + health loop)."""
    if not SHARED_SCRIPTS.is_dir():
        if IN_CI:
            raise AssertionError(f"{SHARED_SCRIPTS} is missing: CI cannot set up podman")
        return
    if os.geteuid() != 0:
        if IN_CI:
            raise AssertionError("the podman setup scripts need root in CI")
        return
    for script, *args in SETUP_STEPS:
        # From "/": the API service started here outlives this run, and conmon fails
        # ("write child: broken pipe") once the directory it was started in is deleted,
        # as a CI clone is.
        run(["bash", str(SHARED_SCRIPTS / script), *args], timeout=1200, cwd=Path("/"))


def _works(args: Sequence[str]) -> bool:
    try:
        return run(args, timeout=60, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass(frozen=True)
class Engine:
    """A container CLI (``docker`` or ``podman``) and the compose command that goes with it."""

    cli: str
    compose: tuple[str, ...]

    @property
    def name(self) -> str:
        """How the test report names this route."""
        return " ".join(self.compose)


def find_engine() -> Engine:
    """The engine to test with, after preparing podman where the shared scripts allow."""
    prepare_podman()
    docker_ok = shutil.which("docker") is not None and _works(["docker", "compose", "version"])
    if os.environ.get("ANOMALY_COMPOSE") != "podman" and docker_ok and _works(["docker", "info"]):
        return Engine(cli="docker", compose=("docker", "compose"))
    if shutil.which("podman") and shutil.which("podman-compose") and _works(["podman", "info"]):
        return Engine(cli="podman", compose=("podman-compose",))
    raise EngineUnavailableError(
        "no container engine: neither `docker compose` with a reachable engine nor "
        "podman + podman-compose (see ../shared/container/README.md)"
    )


@dataclass
class ComposeProject:
    """One compose project of this repository's docker-compose.yml, named uniquely."""

    engine: Engine
    name: str
    env: dict[str, str] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run a compose sub-command for this project."""
        return run([*self.engine.compose, "-p", self.name, *args], timeout=timeout, env=self.env)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a plain engine command (``docker ...`` / ``podman ...``)."""
        return run([self.engine.cli, *args], timeout=timeout, env=self.env)

    def containers(self, service: str) -> list[str]:
        """IDs of the running containers of ``service``, oldest first."""
        out = self.cli(
            "ps",
            "--quiet",
            "--filter",
            f"label=com.docker.compose.project={self.name}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ).stdout.split()
        created = {cid: self.cli("inspect", "--format", "{{.Created}}", cid).stdout for cid in out}
        return sorted(out, key=created.__getitem__)

    def wait_healthy(self, service: str, count: int, timeout_s: float = 180) -> list[str]:
        """Wait until ``count`` containers of ``service`` report healthy; return their IDs."""
        deadline = time.monotonic() + timeout_s
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            ids = self.containers(service)
            states = {
                cid: self.cli("inspect", "--format", "{{.State.Health.Status}}", cid).stdout.strip()
                for cid in ids
            }
            if len(ids) == count and all(s == "healthy" for s in states.values()):
                return ids
            time.sleep(2)
        raise AssertionError(
            f"{service}: wanted {count} healthy containers, got {states}\n{self.logs()}"
        )

    def logs(self) -> str:
        """The last lines of every service's log but the access log, for failure messages.

        The health checks write an access line every few seconds, which would push a
        replica's warnings (Redis failing, a model not loading) out of any tail.
        """
        done = run(
            [*self.engine.compose, "-p", self.name, "logs", "--tail", "400"],
            timeout=60,
            env=self.env,
            check=False,
        )
        kept = [line for line in done.stdout.splitlines() if ACCESS_LOGGER not in line]
        return "\n".join(kept)[-8000:] + done.stderr[-2000:]

    def down(self) -> None:
        """Remove the project's containers, networks and volumes (never fails the test)."""
        run(
            [*self.engine.compose, "-p", self.name, "down", "--volumes", "--remove-orphans"],
            timeout=180,
            env=self.env,
            check=False,
        )
