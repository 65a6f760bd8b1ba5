"""The watcher's fixtures: real servers on free loopback ports (``watch_servers.py``)."""

from __future__ import annotations

from watch_servers import exporter, mosquitto, prometheus

__all__ = ["exporter", "mosquitto", "prometheus"]
