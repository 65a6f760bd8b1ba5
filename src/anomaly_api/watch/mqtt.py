"""One way to open an MQTT connection from a job's broker settings (source and sink)."""

from __future__ import annotations

import os
import ssl

import aiomqtt

from anomaly_api.watch.config import MqttConfig

__all__ = ["connect"]


def connect(config: MqttConfig, *, default_id: str) -> aiomqtt.Client:
    """An ``aiomqtt.Client`` (enter it to connect). With a ``client_id`` the session is
    persistent (clean_session off): the broker keeps QoS 1 messages while the watcher is
    away and delivers them when it is back."""
    tls = None
    if config.tls:
        context = ssl.create_default_context(
            cafile=None if config.ca_file is None else str(config.ca_file)
        )
        tls = context
    password = os.environ.get(config.password_env) if config.password_env else None
    return aiomqtt.Client(
        config.host,
        config.port,
        username=config.username,
        password=password,
        identifier=config.client_id or default_id,
        clean_session=config.client_id is None,
        keepalive=int(config.keepalive),
        tls_context=tls,
    )
