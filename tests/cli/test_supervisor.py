"""The supervisor's listening sockets: one ``SO_REUSEPORT`` socket per worker slot on one
port, over which the kernel spreads connections; one shared socket for a Unix socket; TCP
everywhere so that Nagle is off (the processes themselves: tests/e2e/test_workers.py)."""

from __future__ import annotations

import asyncio
import select
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import SIGNALS

from anomaly_api.cli.supervisor import SlotSupervisor, slot_listeners, supervisor_for, tcp_listener
from anomaly_api.testing import free_port

HOST = "127.0.0.1"
APP = "anomaly_api.cli.workers:worker_app"


@pytest.fixture
def closing() -> Iterator[Callable[[list[socket.socket]], list[socket.socket]]]:
    """Registers sockets to close after the test."""
    opened: list[socket.socket] = []

    def register(sockets: list[socket.socket]) -> list[socket.socket]:
        opened.extend(sockets)
        return sockets

    yield register
    for sock in opened:
        sock.close()


@pytest.fixture
def signal_handlers() -> Iterator[None]:
    """The test process's signal handlers, restored after a supervisor installed its own."""
    saved: dict[int, Any] = {sig: signal.getsignal(sig) for sig in SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _accepted_per_listener(listeners: list[socket.socket], connections: int) -> list[int]:
    """How many of ``connections`` new connections each listener's queue received."""
    for sock in listeners:
        sock.listen(connections)
        sock.setblocking(False)
    clients = [socket.create_connection(listeners[0].getsockname()) for _ in range(connections)]
    counts = [0] * len(listeners)
    try:
        while sum(counts) < connections:
            ready, _, _ = select.select(listeners, [], [], 10)
            assert ready, f"only {sum(counts)} of {connections} connections arrived"
            for sock in ready:
                accepted, _ = sock.accept()
                accepted.close()
                counts[listeners.index(sock)] += 1
    finally:
        for client in clients:
            client.close()
    return counts


def test_every_slot_listens_on_one_port_and_gets_connections(
    closing: Callable[[list[socket.socket]], list[socket.socket]],
) -> None:
    listeners = closing(slot_listeners(HOST, 0, 3))  # port 0: the first socket's port for all
    ports = {sock.getsockname()[1] for sock in listeners}
    assert len(ports) == 1
    assert 0 not in ports
    for sock in listeners:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.get_inheritable()
    counts = _accepted_per_listener(listeners, 90)  # the kernel hashes each to one slot
    assert sum(counts) == 90
    assert min(counts) > 0, counts


def test_a_given_port_is_bound_by_every_slot_and_a_taken_port_is_a_startup_failure(
    closing: Callable[[list[socket.socket]], list[socket.socket]], signal_handlers: None
) -> None:
    (taken,) = closing([socket.create_server((HOST, 0))])  # no SO_REUSEPORT: ours cannot join
    port = taken.getsockname()[1]
    with pytest.raises(OSError, match="in use"):
        slot_listeners(HOST, port, 2)
    config = uvicorn.Config(APP, factory=True, host=HOST, port=port, workers=2)
    with pytest.raises(SystemExit) as stopped:
        supervisor_for(config)
    assert stopped.value.code == STARTUP_FAILURE

    free = free_port()
    listeners = closing(slot_listeners(HOST, free, 2))
    assert [sock.getsockname()[1] for sock in listeners] == [free, free]


def test_tcp_gets_a_socket_per_worker_and_a_unix_socket_one_shared(
    tmp_path: Path, signal_handlers: None
) -> None:
    config = uvicorn.Config(APP, factory=True, host=HOST, port=0, workers=3)
    supervisor = supervisor_for(config)
    try:
        assert isinstance(supervisor, SlotSupervisor)
        assert len(supervisor.sockets) == 3
        assert len({sock.getsockname() for sock in supervisor.sockets}) == 1
    finally:
        for sock in supervisor.sockets:
            sock.close()

    uds = uvicorn.Config(APP, factory=True, uds=str(tmp_path / "api.sock"), workers=3)
    shared = supervisor_for(uds)
    try:
        assert not isinstance(shared, SlotSupervisor)
        ((sock,),) = [shared.sockets]
        assert sock.family == socket.AF_UNIX
    finally:
        for sock in shared.sockets:
            sock.close()


def test_the_listening_socket_answers_without_nagle() -> None:
    """asyncio turns Nagle's algorithm off only on connections accepted from a socket that
    says TCP; uvicorn's own bound socket does not, and every kept-alive answer then waits
    for the client's delayed acknowledgement."""
    config = uvicorn.Config("anomaly_api.cli.workers:worker_app", host="127.0.0.1", port=0)
    listener = tcp_listener(config)
    accepted: list[int] = []

    async def serve_one() -> None:
        done = asyncio.Event()

        def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()
            done.set()

        server = await asyncio.start_server(handle, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname())
            await done.wait()
            writer.close()

    try:
        assert listener.proto == socket.IPPROTO_TCP
        asyncio.run(asyncio.wait_for(serve_one(), timeout=30))
    finally:
        listener.close()
    assert accepted == [1]
