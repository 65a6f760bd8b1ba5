"""KeyRing rules: which key opens which route, and the 401/403 split."""

from __future__ import annotations

import hashlib

import pytest

from anomaly_api.api.errors import (
    AdminClosedError,
    InvalidApiKeyError,
    MissingApiKeyError,
    status_of,
)
from anomaly_api.api.security import KeyRing, is_local_client
from anomaly_api.config import Settings


def _ring(**fields: object) -> KeyRing:
    return KeyRing.from_settings(Settings.model_validate(fields))


def test_no_keys_means_open_except_admin_routes_to_other_hosts() -> None:
    ring = _ring()
    assert not ring.enabled
    ring.check_client(None)
    ring.check_admin(None, local=True)
    with pytest.raises(AdminClosedError, match="ANOMALY_ADMIN_API_KEYS") as raised:
        ring.check_admin(None, local=False)
    assert status_of(raised.value) == (403, "admin_key_not_configured")
    with pytest.raises(AdminClosedError):  # a key sent, but none is configured to match
        ring.check_admin("anything", local=False)


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        (None, True),  # a Unix socket
        ("10.0.0.2", False),
        ("192.0.2.7", False),
        ("::ffff:10.0.0.2", False),
        ("fe80::1", False),
        ("localhost", False),  # a name is never trusted
        ("testclient", False),
    ],
)
def test_which_clients_are_local(host: str | None, local: bool) -> None:
    assert is_local_client(host) is local


def test_admin_keys_open_admin_routes_to_every_host() -> None:
    ring = _ring(admin_api_keys=["root"])
    ring.check_admin("root", local=False)
    with pytest.raises(MissingApiKeyError):
        ring.check_admin(None, local=True)  # once a key exists, loopback needs it too


def test_start_up_notice_says_where_the_key_goes() -> None:
    assert "loopback" in str(_ring().admin_notice())
    assert "ANOMALY_ADMIN_API_KEYS" in str(_ring().admin_notice())
    assert "disabled" in str(_ring(api_keys=["client"]).admin_notice())
    assert _ring(admin_api_keys=["root"]).admin_notice() is None


def test_client_keys_plain_and_hashed() -> None:
    ring = _ring(api_keys=["alpha"], api_key_hashes=[hashlib.sha256(b"beta").hexdigest()])
    ring.check_client("alpha")
    ring.check_client("beta")
    with pytest.raises(MissingApiKeyError):
        ring.check_client(None)
    with pytest.raises(InvalidApiKeyError):
        ring.check_client("gamma")


def test_admin_keys_are_separate() -> None:
    ring = _ring(api_keys=["client"], admin_api_keys=["root"])
    ring.check_client("root")  # an admin key also predicts
    ring.check_admin("root", local=False)
    with pytest.raises(InvalidApiKeyError):
        ring.check_admin("client", local=True)
    with pytest.raises(MissingApiKeyError):
        ring.check_admin(None, local=True)


def test_admin_routes_closed_when_only_client_keys_exist() -> None:
    ring = _ring(api_keys=["client"])
    with pytest.raises(InvalidApiKeyError, match="no admin key"):
        ring.check_admin("client", local=True)


def test_keys_from_environment_are_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANOMALY_API_KEYS", "k3y-first, k3y-second")
    settings = Settings()
    assert [k.get_secret_value() for k in settings.api_keys] == ["k3y-first", "k3y-second"]
    assert "k3y-" not in repr(settings)


def test_hashed_keys_must_be_sha256_hex() -> None:
    with pytest.raises(ValueError, match="api_key_hashes"):
        Settings.model_validate({"api_key_hashes": ["not-a-digest"]})
