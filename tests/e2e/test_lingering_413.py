"""An early 413 reaches every client, also those that write the whole body before reading.

Python's ``urllib`` sends all of a request body before it reads a byte of the answer. A server
that answers 413 and closes with the body still unread makes the kernel send a TCP reset, and
the client sees ``ConnectionResetError`` instead of the 413. The body-size middleware reads and
discards the rest of an oversized body (up to ``max_discard_bytes`` and ``max_discard_s``) before
it answers, as nginx's lingering close does. Real server, real sockets; every client call has a
timeout.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from anomaly_api.testing import HOST, ServerProcess, running_server
from api_testing import NORMAL

TEN_MB = 10 * 1024 * 1024
TIMEOUT_S = 30.0


def padded_body(size: int) -> bytes:
    """A valid JSON ``/predict`` body padded with spaces to ``size`` bytes."""
    head = json.dumps({"features": NORMAL}).encode()
    return head + b" " * (size - len(head))


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_artifacts_dir: Path
) -> Iterator[ServerProcess]:
    """A server with the default limits (1 MiB bodies, 16 MiB discarded at most)."""
    workdir = tmp_path_factory.mktemp("lingering")
    with running_server(workdir, {"ANOMALY_ARTIFACTS_DIR": str(tiny_artifacts_dir)}) as process:
        yield process


def assert_413_body(raw: bytes, request_id: str) -> None:
    error = json.loads(raw)["error"]
    assert error["code"] == "payload_too_large"
    assert "1048576 bytes" in error["message"]
    assert error["request_id"] == request_id


def test_urllib_gets_the_413_for_a_10_mb_body(server: ServerProcess) -> None:
    request = urllib.request.Request(
        server.url + "/predict",
        data=padded_body(TEN_MB),
        headers={"Content-Type": "application/json", "X-Request-ID": "urllib-10mb"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=TIMEOUT_S)
    assert caught.value.code == 413
    assert caught.value.headers["Connection"] == "close"
    assert caught.value.headers["X-Request-ID"] == "urllib-10mb"
    assert_413_body(caught.value.read(), "urllib-10mb")


def test_urllib_gets_the_413_for_a_chunked_10_mb_body(server: ServerProcess) -> None:
    """No Content-Length: the limit is crossed while the body streams in."""
    chunk = b" " * 65536

    def chunks() -> Iterator[bytes]:
        yield json.dumps({"features": NORMAL}).encode()
        for _ in range(TEN_MB // len(chunk)):
            yield chunk

    connection = http.client.HTTPConnection(HOST, server.port, timeout=TIMEOUT_S)
    try:
        connection.request(
            "POST",
            "/predict",
            body=chunks(),
            headers={"Content-Type": "application/json", "X-Request-ID": "chunked-10mb"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 413
        assert response.getheader("Connection") == "close"
        assert_413_body(response.read(), "chunked-10mb")
    finally:
        connection.close()


def test_httpx_gets_the_413_and_its_next_request_is_served(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT_S) as client:
        response = client.post(
            "/predict",
            content=padded_body(TEN_MB),
            headers={"Content-Type": "application/json", "X-Request-ID": "httpx-10mb"},
        )
        assert response.status_code == 413
        assert_413_body(response.content, "httpx-10mb")
        # The 413 closed that connection; the client's next request opens a new one.
        assert client.post("/predict", json={"features": NORMAL}).status_code == 200


@pytest.mark.parametrize("expect", ["", "100-continue"], ids=["no-expect", "expect-100"])
def test_curl_gets_the_413(server: ServerProcess, tmp_path: Path, expect: str) -> None:
    """With ``Expect: 100-continue`` curl waits for the server: the 413 comes unread."""
    payload = tmp_path / "body.json"
    payload.write_bytes(padded_body(TEN_MB))
    command = ["curl", "-sS", "--max-time", str(TIMEOUT_S), "-o", str(tmp_path / "out")]
    command += ["-w", "%{http_code}", "-H", "Content-Type: application/json"]
    command += ["-H", f"Expect: {expect}", "-H", "X-Request-ID: curl-10mb"]
    command += ["--data-binary", f"@{payload}", server.url + "/predict"]
    result = subprocess.run(
        command,
        capture_output=True,
        timeout=TIMEOUT_S + 5,
        check=False,
    )
    assert result.stdout == b"413", result.stderr
    assert_413_body((tmp_path / "out").read_bytes(), "curl-10mb")


def send_all_then_read(port: int, head: bytes, body_size: int) -> tuple[bytes, str]:
    """Write ``head`` and ``body_size`` bytes before reading, as urllib does.

    Returns what could be read and how the exchange ended: ``"eof"`` (the server closed
    cleanly after its answer) or ``"reset"`` (a reset while writing or reading).
    """
    received = b""
    with socket.create_connection((HOST, port), timeout=TIMEOUT_S) as sock:
        try:
            sock.sendall(head)
            chunk = b" " * 65536
            sent = 0
            while sent < body_size:
                sent += sock.send(chunk[: body_size - sent])
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server stopped reading; whatever it answered may still be readable
        try:
            while data := sock.recv(65536):
                received += data
        except ConnectionResetError:
            return received, "reset"
    return received, "eof"


def test_a_body_beyond_the_discard_bound_still_ends(server: ServerProcess) -> None:
    """32 MiB declared, above the 16 MiB bound: answered at once and closed, never a hang.

    The server does not read such a body, so a client that keeps writing meets a reset
    (measured on Linux: the write fails with ConnectionResetError, and the 413 that arrived
    before the reset can still be read; other clients or kernels may see only the reset).
    Either way the exchange ends (the socket timeout would fail the test otherwise) and the
    connection is closed.
    """
    size = 32 * 1024 * 1024
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\nX-Request-ID: beyond\r\n\r\n"
    ).encode()
    received, ending = send_all_then_read(server.port, head, size)
    assert ending in {"eof", "reset"}
    if received:
        assert received.startswith(b"HTTP/1.1 413 "), received[:200]


def test_a_chunked_body_beyond_the_discard_bound_still_ends(server: ServerProcess) -> None:
    size = 24 * 1024 * 1024
    chunk = b" " * 65536
    framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    received = b""
    ending = "eof"
    with socket.create_connection((HOST, server.port), timeout=TIMEOUT_S) as sock:
        try:
            sock.sendall(head)
            for _ in range(size // len(chunk)):
                sock.sendall(framed)
            sock.sendall(b"0\r\n\r\n")
        except (ConnectionResetError, BrokenPipeError):
            pass
        try:
            while data := sock.recv(65536):
                received += data
        except ConnectionResetError:
            ending = "reset"
    assert ending in {"eof", "reset"}
    if received:
        assert received.startswith(b"HTTP/1.1 413 "), received[:200]


def test_pipelined_requests_around_a_413(server: ServerProcess) -> None:
    """A good request, an oversized one and another good one written at once on one
    keep-alive connection: the first is answered 200, the second 413 with
    ``Connection: close``, and then the connection ends (the third is not answered)."""
    good = json.dumps({"features": NORMAL}).encode()

    def request(body: bytes, request_id: str) -> bytes:
        return (
            f"POST /predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Request-ID: {request_id}\r\n\r\n"
        ).encode() + body

    stream = request(good, "p1") + request(padded_body(2 * 1024 * 1024), "p2") + request(good, "p3")
    received = b""
    with socket.create_connection((HOST, server.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(stream)
        while data := sock.recv(65536):  # ends with EOF: a reset or a timeout fails the test
            received += data
    first, _, rest = received.partition(b"HTTP/1.1 413 ")
    assert first.startswith(b"HTTP/1.1 200 ")
    assert b"x-request-id: p1" in first.lower()
    assert b"connection: close" in rest.lower()
    assert b'"request_id":"p2"' in rest
    assert b"p3" not in rest
