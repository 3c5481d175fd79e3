"""Vault client for step 3 of the rhythm: trade an OBO token for a database lease.

Built on hvac 2.4, which is **synchronous** (requests): callers in async code run
every method in a worker thread (``anyio.to_thread.run_sync``). Once logged in, one
client may be shared by threads; :meth:`VaultLeaseClient.login` swaps the token
atomically.

No ambient credential is ever used. hvac reads ``VAULT_TOKEN``, ``~/.vault-token``,
``VAULT_ADDR`` and ``VAULT_CLIENT_CERT`` when it is given nothing; this client
always passes the token, address and client certificate explicitly, and its HTTP
session ignores the environment (no proxies, no ``.netrc``).

The client token, SVIDs and OBO tokens go to the configured address and nowhere
else: it must be HTTPS (plain HTTP only to loopback), and a redirect is refused
rather than followed (requests would resend ``X-Vault-Token`` and, for 307/308,
the body with the OBO token to whatever origin the ``Location`` names).

Exceptions (every hvac or requests error is translated in one place)::

    VaultError(status, message)          Vault answered with an error
     └── VaultUnavailableError           no usable answer: refused, timed out,
                                         TLS failure, 502/503 (sealed, standby)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import hvac
import hvac.exceptions
import requests

from trustloop.identity.transport import require_secure

_STATUS_BY_ERROR: dict[type[hvac.exceptions.VaultError], int] = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}
_UNAVAILABLE = {502, 503}


class VaultError(Exception):
    """Vault refused the request; ``status`` is its HTTP status when it answered."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


class VaultUnavailableError(VaultError):
    """Vault could not be reached or cannot serve (sealed, standby, overloaded)."""


@dataclass(frozen=True)
class Lease:
    """A database credential leased by Vault; the password never prints."""

    lease_id: str
    username: str
    password: str = field(repr=False)
    jti: str
    lease_duration: int

    def __repr__(self) -> str:
        return (
            f"Lease(lease_id={self.lease_id!r}, username={self.username!r}, "
            f"password='***', jti={self.jti!r}, "
            f"lease_duration={self.lease_duration})"
        )


class VaultLeaseClient:
    """Log in with a JWT-SVID, issue ``verify-rar`` credentials, revoke leases."""

    def __init__(
        self,
        addr: str,
        *,
        auth_role: str,
        creds_role: str,
        timeout: float = 5.0,
        ca_cert: str | None = None,
        auth_mount: str = "jwt",
        engine_mount: str = "verify-rar",
    ) -> None:
        if not addr or not auth_role or not creds_role:
            raise ValueError("a Vault address, auth role and creds role are required")
        require_secure(addr, "Vault")
        self._auth_role = auth_role
        self._creds_path = f"/v1/{engine_mount}/creds/{creds_role}"
        self._auth_mount = auth_mount
        self._token_expires_at = float("-inf")
        self._lock = threading.Lock()
        self._client = _explicit_client(addr, timeout=timeout, ca_cert=ca_cert)

    def login(self, svid: str) -> None:
        """Authenticate with a JWT-SVID (audience: Vault) and keep the client token."""
        with _translated():
            answer = self._client.auth.jwt.jwt_login(
                role=self._auth_role,
                jwt=svid,
                use_token=False,
                path=self._auth_mount,
            )
        auth = _object(answer, "auth")
        token = auth.get("client_token")
        ttl = auth.get("lease_duration")
        if not isinstance(token, str) or not token or not isinstance(ttl, int):
            raise VaultError(None, "malformed login response")

        with self._lock:
            self._client.token = token
            self._token_expires_at = time.monotonic() + ttl

    def needs_login(self, margin_s: float = 30.0) -> bool:
        """True before the first login and when the client token is about to expire."""
        return time.monotonic() + margin_s >= self._token_expires_at

    def issue(self, obo_token: str) -> Lease:
        """Present the OBO token to the ``verify-rar`` engine; answer the lease."""
        if self._token_expires_at == float("-inf"):
            raise VaultError(None, "not logged in: call login() first")

        with self._forget_token_if_refused(), _translated():
            answer = self._client.adapter.post(
                self._creds_path, json={"obo_token": obo_token}
            )

        data = _object(answer, "data")
        lease = _lease_from(answer, data)
        if lease is None:
            raise VaultError(None, "malformed credential response")
        return lease

    def revoke(self, lease_id: str) -> None:
        """Revoke a lease now; revoking an unknown or revoked lease succeeds."""
        with self._forget_token_if_refused(), _translated():
            self._client.sys.revoke_lease(lease_id)

    @contextmanager
    def _forget_token_if_refused(self) -> Iterator[None]:
        """A client token Vault no longer knows (it restarted, say) is dropped, so
        :meth:`needs_login` says so at once rather than when it would have expired.
        Vault answers a bare "permission denied" only for the token itself."""
        try:
            yield
        except VaultError as exc:
            if exc.status == 403 and exc.message == "permission denied":
                with self._lock:
                    self._token_expires_at = float("-inf")
            raise

    def close(self) -> None:
        self._client.adapter.close()


def _explicit_client(addr: str, *, timeout: float, ca_cert: str | None) -> Any:
    """An hvac client that reads nothing from the environment or the home directory.

    ``token=""`` (not None) stops hvac's ``VAULT_TOKEN`` / ``~/.vault-token`` lookup;
    ``cert=()`` stops ``VAULT_CLIENT_CERT``; ``trust_env=False`` stops requests'
    proxy, ``.netrc`` and CA-bundle variables.
    """
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_cert if ca_cert is not None else True
    session.max_redirects = 0
    session.hooks["response"].append(_refuse_redirect)
    return hvac.Client(
        url=addr,
        token="",
        cert=(),
        verify=session.verify,
        timeout=timeout,
        session=session,
        allow_redirects=False,
    )


def _refuse_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A 3xx is no answer: hvac would take it for success (``revoke`` included)."""
    if 300 <= response.status_code < 400:
        raise VaultUnavailableError(response.status_code, "redirect refused")


@contextmanager
def _translated() -> Iterator[None]:
    """The one choke point where hvac and requests errors become ours."""
    try:
        yield
    except hvac.exceptions.VaultError as exc:
        status = _STATUS_BY_ERROR.get(type(exc))
        message = ", ".join(str(e) for e in exc.errors or ()) or "request failed"
        if status in _UNAVAILABLE:
            raise VaultUnavailableError(status, message) from exc
        raise VaultError(status, message) from exc
    except requests.RequestException as exc:
        raise VaultUnavailableError(None, type(exc).__name__) from exc


def _object(answer: object, key: str) -> dict[str, Any]:
    if not isinstance(answer, dict) or not isinstance(answer.get(key), dict):
        raise VaultError(None, f"malformed response: no {key!r} object")
    value: dict[str, Any] = answer[key]
    return value


def _lease_from(answer: dict[str, Any], data: dict[str, Any]) -> Lease | None:
    fields = (
        answer.get("lease_id"),
        data.get("username"),
        data.get("password"),
        data.get("jti"),
    )
    duration = answer.get("lease_duration")
    if not all(isinstance(v, str) and v for v in fields) or not isinstance(
        duration, int
    ):
        return None
    lease_id, username, password, jti = (str(v) for v in fields)
    return Lease(lease_id, username, password, jti, duration)
