"""A small Chrome DevTools protocol client: Debian's chromium, headless, one tab.

Only what the docs and operator-page tests need: open a URL, wait for its load event,
evaluate a script (awaiting its promise), and report what went wrong on the way (script
exceptions, console errors, failed requests) and every URL the page asked for.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-breakpad",  # no crash handler: it would outlive the browser
    "--disable-crash-reporter",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",  # the OS picks; chromium writes it to DevToolsActivePort
]


def chromium_path() -> str:
    """Debian's ``chromium``; missing is a failure (``make tools`` installs it), not a skip."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("chromium is not installed: run `make tools` (apt-get install chromium)")
    return found


@dataclass
class PageVisit:
    """What one page load showed."""

    url: str
    status: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)


class HeadlessBrowser:
    """A headless chromium with a fresh profile, driven over the DevTools protocol."""

    def __init__(self, profile_dir: Path, log: Path) -> None:
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._stack = ExitStack()
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        try:
            port = self._devtools_port(profile_dir / "DevToolsActivePort")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as ans:
                targets = json.load(ans)
            page = next(t for t in targets if t["type"] == "page")
            # No keepalive pings: the browser lives for the whole session and sits idle
            # between tests; a pong missed on a loaded machine must not close it.
            self._ws: ClientConnection = self._stack.enter_context(
                connect(page["webSocketDebuggerUrl"], max_size=None, ping_interval=None)
            )
            for domain in ("Page", "Runtime", "Network", "Log"):
                self.call(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, port_file: Path, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}")
            lines = port_file.read_text().splitlines() if port_file.exists() else []
            if lines and lines[0].isdigit():
                return int(lines[0])
            time.sleep(0.05)
        raise TimeoutError("chromium did not open its DevTools port")

    def call(self, method: str, timeout_s: float = 30.0, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self._events.append(message)

    def _wait_for_event(self, method: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(e.get("method") == method for e in self._events):
            message = json.loads(self._ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            self._events.append(message)

    def visit(self, url: str, script: str, timeout_s: float = 30.0) -> PageVisit:
        """Load ``url``, wait for its load event, then evaluate ``script`` (a JSON string)."""
        self._events.clear()
        self.call("Page.navigate", url=url)
        self._wait_for_event("Page.loadEventFired", timeout_s)
        visit = PageVisit(url=url, data=self.evaluate(script))
        self.report(visit)
        return visit

    def evaluate(self, script: str, timeout_s: float = 30.0) -> Any:
        """The JSON value of ``script`` (a JSON string, or a promise of one) in the page."""
        result = self.call(
            "Runtime.evaluate",
            timeout_s=timeout_s,
            expression=script,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails']}")
        return json.loads(result["result"]["value"])

    def report(self, visit: PageVisit) -> None:
        """Set ``visit``'s requests and errors to what happened since the last navigation."""
        visit.requested.clear()
        visit.errors.clear()
        for event in self._events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                visit.requested.append(params["request"]["url"])
            elif method == "Network.responseReceived" and params.get("type") == "Document":
                visit.status = params["response"]["status"]
            elif method == "Network.loadingFailed":
                visit.errors.append(f"request failed: {params.get('errorText')}")
            elif method == "Runtime.exceptionThrown":
                visit.errors.append(f"script error: {params['exceptionDetails'].get('text')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                visit.errors.append(f"console: {params['entry'].get('text')}")

    def close(self) -> None:
        """Close the connection and stop chromium (SIGTERM, then SIGKILL)."""
        try:
            self._stack.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self._log.close()
