"""Build-time smoke run of the image's own command, which also leaves the bytecode it needs.

The build stage deletes every ``__pycache__`` and then runs this: it starts
``anomaly-api serve`` exactly as the container will (plus a Redis URL that refuses
connections, holding the prediction cache too, so the Redis client code of the streams
and of the shared cache is imported and their fail-open paths run), calls
each endpoint once, and stops the server with SIGTERM. Python writes ``.pyc`` files only
for the modules that were really imported, so the image carries bytecode for serving
(fast start on a read-only filesystem) without the megabytes compiled for code that
never runs. Any failure here fails the build with the server's output.

Standard library only: it runs in the pruned virtualenv.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PORT = 8799
BASE = f"http://127.0.0.1:{PORT}"
READY_TIMEOUT_S = 120.0
NORMAL = [0.5, 1.2, -0.3, 0.8, 1.5, 0.2, -0.1, 0.9]
ANOMALOUS = [8.1, -5.3, 7.2, 9.0, -8.4, 6.1, 8.8, -7.2]


def call(path: str, body: object | None = None) -> dict[str, object]:
    """GET (or POST ``body`` as JSON) and return the decoded JSON answer; raise on non-2xx."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - fixed loopback URL
        BASE + path, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        answer: dict[str, object] = json.loads(response.read())
        return answer


def wait_ready(server: subprocess.Popen[bytes]) -> None:
    """Poll /health/ready until it answers 200, the server dies, or the timeout passes."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode} before it was ready")
        try:
            call("/health/ready")
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f} s")


def exercise() -> None:
    """One call per endpoint, checking the answers make sense."""
    call("/health")
    call("/health/live")
    call("/model/info")
    for _ in range(2):  # a miss, then the cache path
        call("/predict", {"features": NORMAL, "observation_id": "warmup"})
    rows = [{"features": NORMAL}, {"features": ANOMALOUS}]
    batch = call("/predict/batch", {"observations": rows})
    if batch.get("n_anomalies") != 1:
        raise RuntimeError(f"unexpected batch answer: {batch}")


def main() -> int:
    """Run the server, exercise it, stop it; non-zero exit on any failure."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        {
            "ANOMALY_PORT": str(PORT),
            "REDIS_URL": "redis://127.0.0.1:9/0",
            "ANOMALY_PREDICTION_CACHE": "redis",
        }
    )
    # The console script next to this interpreter: the one the image's CMD runs.
    command = str(Path(sys.executable).with_name("anomaly-api"))
    server = subprocess.Popen(  # noqa: S603 - our own console script, fixed arguments
        [command, "serve", "--host", "127.0.0.1", "--no-train-if-missing"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(server)
        exercise()
    except Exception as exc:
        server.kill()
        output = server.communicate(timeout=30)[0].decode(errors="replace")
        print(output, f"\nwarm-up failed: {exc}", sep="", file=sys.stderr)
        return 1
    server.send_signal(signal.SIGTERM)
    output = server.communicate(timeout=60)[0].decode(errors="replace")
    if server.returncode != 0:
        print(output, f"\nserver exited with {server.returncode} on SIGTERM", file=sys.stderr)
        return 1
    print("warm-up passed: ready, every endpoint answered, clean exit on SIGTERM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
