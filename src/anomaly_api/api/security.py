"""Optional API keys: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``.

Rules (open when no key is configured, the local default, except admin routes):

* prediction and model routes need a client key (or an admin key) once client keys exist;
* admin routes need an admin key once any key exists: client keys never reload models.
  With no key at all they answer only loopback clients (and Unix sockets), as Redis'
  protected mode does: one request to them can swap the model or silence every alarm, so
  a service bound to every address must not offer them to the network without a key;
* health and metrics stay open unless ``auth_protect_health`` / ``auth_protect_metrics``.

Keys are compared as SHA-256 digests with ``hmac.compare_digest`` against every
configured digest (no early exit), so timing reveals neither the key nor which one
matched. Plain keys are hashed once at start-up and kept as ``SecretStr`` in settings;
nothing here logs a header.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from anomaly_api.api.errors import AdminClosedError, InvalidApiKeyError, MissingApiKeyError
from anomaly_api.config import Settings

__all__ = [
    "ADMIN_KEY_HINT",
    "AdminKeyDep",
    "ApiKeyDep",
    "CallerDep",
    "HealthKeyDep",
    "KeyRing",
    "MetricsKeyDep",
    "check_api_key",
    "is_local_client",
]

ADMIN_KEY_HINT = (
    "set ANOMALY_ADMIN_API_KEYS (or ANOMALY_ADMIN_API_KEY_HASHES) in the server's "
    "environment and send the key as X-API-Key or Authorization: Bearer"
)
"""Where an admin key goes: in the 403 of a closed admin route and the start-up log."""


def is_local_client(host: str | None) -> bool:
    """Whether a request came from this host: a loopback address (IPv4, IPv6 or IPv4
    mapped into IPv6) or no address at all (a Unix socket)."""
    if host is None:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a name, not an address: never trusted as local
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _matches(digest: bytes, accepted: tuple[bytes, ...]) -> bool:
    found = False
    for candidate in accepted:
        found |= hmac.compare_digest(digest, candidate)
    return found


@dataclass(frozen=True)
class KeyRing:
    """SHA-256 digests of the accepted client and admin keys, and which routes stay open."""

    client: tuple[bytes, ...] = ()
    admin: tuple[bytes, ...] = ()
    protect_health: bool = False
    protect_metrics: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """Hash the plain keys once; hashed keys are taken as given (hex)."""

        def digests(plain: list[str], hashed: list[str]) -> tuple[bytes, ...]:
            return tuple(_digest(k) for k in plain) + tuple(bytes.fromhex(h) for h in hashed)

        return cls(
            client=digests(
                [k.get_secret_value() for k in settings.api_keys], settings.api_key_hashes
            ),
            admin=digests(
                [k.get_secret_value() for k in settings.admin_api_keys],
                settings.admin_api_key_hashes,
            ),
            protect_health=settings.auth_protect_health,
            protect_metrics=settings.auth_protect_metrics,
        )

    @property
    def enabled(self) -> bool:
        """Whether any key is configured at all."""
        return bool(self.client or self.admin)

    def admin_notice(self) -> str | None:
        """What an operator should know at start-up about who may reach the admin routes
        (``None`` once an admin key is configured)."""
        if self.admin:
            return None
        if self.enabled:
            return f"admin routes are disabled: client keys but no admin key; {ADMIN_KEY_HINT}"
        return (
            "admin routes answer only loopback clients (no admin key is configured); "
            f"to reach them from other hosts, {ADMIN_KEY_HINT}"
        )

    def check_client(self, key: str | None) -> None:
        """Accept a client or admin key when client keys are configured."""
        if self.client:
            self._check(key, self.client + self.admin)

    def check_admin(self, key: str | None, *, local: bool) -> None:
        """Accept only an admin key once any key is configured; with none, only a ``local``
        client (loopback or Unix socket)."""
        if not self.enabled:
            if not local:
                raise AdminClosedError(
                    "admin routes answer only loopback clients while no admin key is "
                    f"configured: {ADMIN_KEY_HINT}"
                )
            return
        if not self.admin and key:
            raise InvalidApiKeyError("admin routes are disabled: no admin key is configured")
        self._check(key, self.admin)

    def identify(self, key: str | None) -> str:
        """Who sent a request the client check accepted: ``admin:`` or ``client:`` and 12
        hex digits of the key's SHA-256 (what ``api_key_hashes`` lists), else ``anonymous``."""
        if not key:
            return "anonymous"
        digest = _digest(key)
        role = "admin" if _matches(digest, self.admin) else "client"
        return f"{role}:{digest.hex()[:12]}"

    @staticmethod
    def _check(key: str | None, accepted: tuple[bytes, ...]) -> None:
        if not key:
            raise MissingApiKeyError("missing API key: send X-API-Key or Authorization: Bearer")
        if not _matches(_digest(key), accepted):
            raise InvalidApiKeyError("API key not accepted for this route")


# auto_error=False: a missing key is ours to report, in the API's error format. The
# dependencies below are ``async def``: FastAPI would run plain ``def`` ones in a thread.
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


# Each dependency below takes the two header schemes directly (so both stay in the
# OpenAPI security schemes) rather than through a shared sub-dependency: FastAPI solves
# every dependency node anew on each request, ~10 µs apiece on the hot path.
ApiKeyHeader = Annotated[str | None, Depends(_api_key_header)]
BearerHeader = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _presented(api_key: str | None, bearer: HTTPAuthorizationCredentials | None) -> str | None:
    if api_key:
        return api_key
    return bearer.credentials if bearer else None


def _keyring(request: Request) -> KeyRing:
    ring: KeyRing = request.state.keyring  # the lifespan state (``AppState``)
    return ring


async def require_api_key(request: Request, api_key: ApiKeyHeader, bearer: BearerHeader) -> None:
    """Prediction and model routes."""
    _keyring(request).check_client(_presented(api_key, bearer))


async def check_api_key(request: Request) -> None:
    """``require_api_key`` with the two header schemes read here: for the pure ASGI fast
    path (``anomaly_api.api.fast_path``), which solves no dependencies. Without client keys
    every caller is accepted: the headers are not read."""
    if _keyring(request).client:
        await require_api_key(request, await _api_key_header(request), await _bearer(request))


async def api_key_identity(request: Request, api_key: ApiKeyHeader, bearer: BearerHeader) -> str:
    """Client routes that record who called (``KeyRing.identify``), after the client check."""
    ring = _keyring(request)
    key = _presented(api_key, bearer)
    ring.check_client(key)
    return ring.identify(key if ring.enabled else None)


async def require_admin_key(request: Request, api_key: ApiKeyHeader, bearer: BearerHeader) -> None:
    """Admin routes."""
    local = is_local_client(request.client.host if request.client else None)
    _keyring(request).check_admin(_presented(api_key, bearer), local=local)


async def require_health_key(request: Request, api_key: ApiKeyHeader, bearer: BearerHeader) -> None:
    """Health routes: open unless ``auth_protect_health``."""
    ring = _keyring(request)
    if ring.protect_health:
        ring.check_client(_presented(api_key, bearer))


async def require_metrics_key(
    request: Request, api_key: ApiKeyHeader, bearer: BearerHeader
) -> None:
    """``/metrics``: open unless ``auth_protect_metrics``."""
    ring = _keyring(request)
    if ring.protect_metrics:
        ring.check_client(_presented(api_key, bearer))


ApiKeyDep = Depends(require_api_key)
CallerDep = Annotated[str, Depends(api_key_identity)]
AdminKeyDep = Depends(require_admin_key)
HealthKeyDep = Depends(require_health_key)
MetricsKeyDep = Depends(require_metrics_key)
