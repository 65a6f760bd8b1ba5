"""Admin routes over a real network: a server in a network namespace of its own, asked
from outside it (a non-loopback address) and from inside it (loopback).

The namespace and its veth pair exist only for the test, on a private /30 that no other
interface of this machine uses; both are removed after. Needs root and iproute2 (CI has
both: scripts/ensure_tools.sh).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from anomaly_api.testing import clean_env

PORT = 8000  # inside a namespace of its own: nothing else listens there
ADMIN_KEY = "admin-net-key"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /30 of 10.0.0.0/8 that overlaps no address or route of this machine."""
    shown = subprocess.run(
        ["ip", "-4", "-o", "route", "show", "table", "all"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    used = [ipaddress.ip_network(w, strict=False) for w in shown.split() if "/" in w]
    for third in range(200, 255):
        candidate = ipaddress.ip_network(f"10.{os.getpid() % 250}.{third}.0/30")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise AssertionError("no free private /30 for the test")


@dataclass(frozen=True)
class Namespace:
    """A network namespace reachable from here at ``inside``; we are ``outside``."""

    name: str
    inside: str
    outside: str

    def run(self, *command: str) -> list[str]:
        """``command`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *command]


@contextmanager
def namespace() -> Iterator[Namespace]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs as root with iproute2 (scripts/ensure_tools.sh)")
        pytest.skip("needs root and iproute2 to create a network namespace")
    net = _free_subnet()
    outside, inside = (str(h) for h in net.hosts())
    tag = f"{os.getpid() % 100000}"
    name, host_if, ns_if = f"anomaly-adm-{tag}", f"vaho{tag}", f"vahi{tag}"
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", name)
        _ip("addr", "add", f"{outside}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", name, "addr", "add", f"{inside}/30", "dev", ns_if)
        _ip("-n", name, "link", "set", ns_if, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        yield Namespace(name, inside, outside)
    finally:
        subprocess.run(
            ["ip", "link", "del", host_if],
            check=False,  # gone with the namespace already, as a rule
            capture_output=True,
            timeout=30,
        )
        _ip("netns", "del", name)


@contextmanager
def server_in(ns: Namespace, workdir: Path, env: dict[str, str]) -> Iterator[httpx.Client]:
    """``anomaly-api serve`` on every address of the namespace; a client of it from
    outside (straight to the namespace, never through a proxy)."""
    log = workdir / "server.log"
    command = ns.run(sys.executable, "-m", "anomaly_api.cli.main", "serve")
    command += ["--host", "0.0.0.0", "--port", str(PORT), "--no-train-if-missing"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=workdir, env=clean_env(env), stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://{ns.inside}:{PORT}"
    http = httpx.Client(base_url=url, trust_env=False, timeout=30)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if http.get("/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield http
    finally:
        http.close()
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _post_from_inside(ns: Namespace, path: str) -> tuple[int, str]:
    """Status and body of a POST to the server over the namespace's loopback."""
    code = (
        "import urllib.request, urllib.error\n"
        f"request = urllib.request.Request('http://127.0.0.1:{PORT}{path}', method='POST')\n"
        "direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
        "try:\n"
        "    answer = direct.open(request, timeout=30)\n"
        "except urllib.error.HTTPError as exc:\n"
        "    answer = exc\n"
        "print(answer.status); print(answer.read().decode())\n"
    )
    out = subprocess.run(
        ns.run(sys.executable, "-c", code), check=True, capture_output=True, text=True, timeout=60
    ).stdout
    status, body = out.split("\n", 1)
    return int(status), body


def test_without_a_key_only_loopback_reaches_admin_routes(
    tmp_path: Path, tiny_artifacts_dir: Path
) -> None:
    env = {"ANOMALY_ARTIFACTS_DIR": str(tiny_artifacts_dir)}
    with namespace() as ns, server_in(ns, tmp_path, env) as http:
        remote = http.post("/admin/reload")
        assert remote.status_code == 403, remote.text
        error = remote.json()["error"]
        assert error["code"] == "admin_key_not_configured"
        assert "ANOMALY_ADMIN_API_KEYS" in error["message"]
        thresholds = http.post("/admin/thresholds", json={"target_fpr": 0.5})
        assert thresholds.status_code == 403
        # The same server serves predictions to the remote client, and admin to loopback.
        health = http.get("/health/ready")
        assert health.status_code == 200
        status, body = _post_from_inside(ns, "/admin/reload")
        assert status == 200, body
        assert '"model_version":"tiny-1"' in body.replace(" ", "")
    assert "answer only loopback clients" in (tmp_path / "server.log").read_text()


def test_an_admin_key_opens_admin_routes_to_the_network(
    tmp_path: Path, tiny_artifacts_dir: Path
) -> None:
    env = {"ANOMALY_ARTIFACTS_DIR": str(tiny_artifacts_dir), "ANOMALY_ADMIN_API_KEYS": ADMIN_KEY}
    with namespace() as ns, server_in(ns, tmp_path, env) as http:
        assert http.post("/admin/reload").status_code == 401
        keyed = http.post("/admin/reload", headers={"X-API-Key": ADMIN_KEY})
        assert keyed.status_code == 200, keyed.text
        status, _ = _post_from_inside(ns, "/admin/reload")
        assert status == 401  # once a key exists, loopback needs it too
