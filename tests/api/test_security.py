"""KeyRing rules: which key opens which route, and the 401/403 split."""

from __future__ import annotations

import hashlib

import pytest

from anomaly_api.api.errors import InvalidApiKeyError, MissingApiKeyError
from anomaly_api.api.security import KeyRing
from anomaly_api.config import Settings


def _ring(**fields: object) -> KeyRing:
    return KeyRing.from_settings(Settings.model_validate(fields))


def test_no_keys_means_open() -> None:
    ring = _ring()
    assert not ring.enabled
    ring.check_client(None)
    ring.check_admin(None)


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
    ring.check_admin("root")
    with pytest.raises(InvalidApiKeyError):
        ring.check_admin("client")
    with pytest.raises(MissingApiKeyError):
        ring.check_admin(None)


def test_admin_routes_closed_when_only_client_keys_exist() -> None:
    ring = _ring(api_keys=["client"])
    with pytest.raises(InvalidApiKeyError, match="no admin key"):
        ring.check_admin("client")


def test_keys_from_environment_are_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANOMALY_API_KEYS", "k3y-first, k3y-second")
    settings = Settings()
    assert [k.get_secret_value() for k in settings.api_keys] == ["k3y-first", "k3y-second"]
    assert "k3y-" not in repr(settings)


def test_hashed_keys_must_be_sha256_hex() -> None:
    with pytest.raises(ValueError, match="api_key_hashes"):
        Settings.model_validate({"api_key_hashes": ["not-a-digest"]})
