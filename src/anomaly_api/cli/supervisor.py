"""The supervisor of ``anomaly-api serve --workers N`` and the listening sockets it hands out.

One listening socket shared by every worker can spread connections badly: asyncio accepts
every connection waiting in the queue each time its loop wakes, so the first worker to wake
can take most of a burst of new connections, and keeps them for as long as the clients keep
them alive (a load balancer's pool, wrk). So on Linux, for a TCP address, the supervisor
binds one socket per worker slot to the same address with ``SO_REUSEPORT``, and the kernel
hands each new connection to one slot by a hash of its addresses. Worker ``i``, and
whichever process replaces it (after a crash, or on SIGHUP), listens on slot ``i``'s socket
alone. The supervisor keeps every slot's socket open: the kernel resets the connections
queued on a reuseport socket once it is closed, so a dead worker's connections wait for its
replacement instead. Elsewhere (a Unix socket, an inherited fd, a platform without
``SO_REUSEPORT`` or where it does not spread connections, like macOS) every worker shares
one socket.
"""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

__all__ = ["SlotSupervisor", "Supervisor", "slot_listeners", "supervisor_for", "tcp_listener"]

_log = logging.getLogger("uvicorn.error")


def tcp_listener(config: uvicorn.Config) -> socket.socket:
    """The listening socket uvicorn's ``config`` binds, marked as TCP.

    uvicorn binds it with protocol 0; the connections accepted on it inherit that, and
    asyncio turns Nagle's algorithm off (``TCP_NODELAY``) only on sockets that say
    ``IPPROTO_TCP``. Left as it is, every answer on a kept-alive connection but the first
    waits for the client's delayed acknowledgement (~40 ms on Linux) and two workers serve
    a fraction of what one does. The same file descriptor, re-wrapped with the protocol
    named, is what the workers inherit.
    """
    sock = config.bind_socket()
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return sock  # a Unix socket: no Nagle to turn off
    return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())


def slot_listeners(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets bound to ``host``:``port`` with ``SO_REUSEPORT``, one per worker slot.

    Port 0 binds the first to a free port and the others to the same one. Each is created
    as ``IPPROTO_TCP`` (see ``tcp_listener``: Nagle) and inheritable; the workers' event
    loops make them listen.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Supervisor(Multiprocess):
    """uvicorn's supervisor, closing its copies of the listening sockets before it stops the
    workers: once they have closed theirs, new connections are refused at once instead of
    waiting unserved in the backlog until the last worker has drained."""

    def terminate_all(self) -> None:
        for sock in self.sockets:
            sock.close()
        super().terminate_all()


class SlotSupervisor(Supervisor):
    """The supervisor with one listening socket per worker slot (``sockets[i]`` is slot
    ``i``'s): every process it starts for slot ``i`` serves that socket alone."""

    def _start(self, slot: int) -> Process:
        process = Process(self.config, [self.sockets[slot]])
        process.start()
        return process

    def init_processes(self) -> None:
        self.processes = [self._start(slot) for slot in range(self.processes_num)]

    def restart_all(self) -> None:
        """Replace each worker in turn by one on its slot, ready before the old one stops;
        a replacement not ready in time is stopped and the restart abandoned."""
        for slot, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._start(slot)
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                if not self.should_exit.is_set():
                    _log.error(
                        "New child process [%s] was not ready in time; keeping worker [%s] "
                        "and aborting the restart.",
                        new.pid,
                        old.pid,
                    )
                return
            old.terminate()
            old.join()
            self.processes[slot] = new

    def keep_subprocess_alive(self) -> None:
        """Start a new worker on the slot of each one that died or stopped answering; stop
        the supervisor when one failed before it served (it would fail again)."""
        for slot, process in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                _log.error("Child process [%s] failed to start, stopping.", process.pid)
                self.should_exit.set()
                return
            _log.info("Child process [%s] died", process.pid)
            self.processes[slot] = self._start(slot)

    def handle_ttin(self) -> None:
        """One more worker, on a new slot bound to the same address."""
        _log.info("Received SIGTTIN, adding a worker on a new listening socket.")
        host, port = self.sockets[0].getsockname()[:2]
        try:
            self.sockets += slot_listeners(host, port, 1)
        except OSError as exc:
            _log.error("No worker added: %s", exc)
            return
        self.processes_num += 1
        self.processes.append(self._start(len(self.processes)))

    def handle_ttou(self) -> None:
        """One worker fewer: the last slot's, whose socket closes with it."""
        if self.processes_num <= 1:
            _log.info("Received SIGTTOU, but one worker is the fewest.")
            return
        _log.info("Received SIGTTOU, stopping the last worker and closing its socket.")
        self.processes_num -= 1
        self.sockets.pop().close()
        process = self.processes.pop()
        process.terminate()
        process.join()


def supervisor_for(config: uvicorn.Config) -> Supervisor:
    """The supervisor of ``config.workers`` workers: one socket per slot where the kernel
    spreads connections over them (Linux, a TCP address), else one shared socket."""
    spreads = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")
    if not spreads or config.uds is not None or config.fd is not None:
        return Supervisor(config, sockets=[tcp_listener(config)])
    try:
        sockets = slot_listeners(config.host, config.port, config.workers)
    except OSError as exc:
        _log.error(exc)
        sys.exit(STARTUP_FAILURE)
    scheme = "https" if config.is_ssl else "http"
    address = f"[{config.host}]" if ":" in config.host else config.host
    _log.info(
        "Uvicorn running on %s://%s:%d, one listening socket per worker (Press CTRL+C to quit)",
        scheme,
        address,
        sockets[0].getsockname()[1],
    )
    return SlotSupervisor(config, sockets=sockets)
