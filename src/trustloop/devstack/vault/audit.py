"""A file audit device in Vault's JSON shape, written through the hash chain.

Each request yields two lines, ``{"type": "request", ...}`` before it is handled
and ``{"type": "response", ...}`` after, both with ``auth``, ``request`` (``id``,
``operation``, ``path``, ``data``, ``remote_address``) and ``error``; the
response line adds ``response``. As in Vault, every string value is replaced by
``hmac-sha256:<hex>`` under a per-installation key, except the values an
operator needs in clear to follow a call: the OBO ``jti``, lease ids, role
names, the SPIFFE ID and policies. Tokens, accessors, SVIDs, OBO tokens and
passwords therefore appear only as HMACs; a known value can be matched by
computing its HMAC with the key. :data:`NEVER_CLEAR` names the secret fields
that must never join :data:`CLEAR_KEYS`; the module refuses to load if one does.

If a line cannot be written, :class:`~trustloop.audit.chain.AuditWriteError`
propagates and the request fails (Vault's rule).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustloop.audit.chain import AuditLog

if TYPE_CHECKING:
    from trustloop.devstack.vault.tokens import TokenInfo

HMAC_PREFIX = "hmac-sha256:"
KEY_BYTES = 32

# Keys whose string values are written in clear; every other string is HMAC'd.
CLEAR_KEYS = frozenset(
    {
        "role",
        "jti",
        "lease_id",
        "id",
        "request_id",
        "username",
        "spiffe_id",
        "policies",
        "display_name",
        "issue_time",
        "expire_time",
        "errors",
    }
)
# In the request as the caller sent it, only these are clear: the auth role of a
# login and the lease of a revoke or lookup. Anything else a caller puts in a body
# (say "jti", to plant a row in another call's trace) is HMAC'd.
REQUEST_CLEAR_KEYS = frozenset({"role", "lease_id"})
# Secret fields of requests and answers: HMAC'd always, never listed as clear.
NEVER_CLEAR = frozenset(
    {
        "client_token",
        "accessor",
        "jwt",
        "obo_token",
        "password",
    }
)
if (CLEAR_KEYS | REQUEST_CLEAR_KEYS) & NEVER_CLEAR:  # pragma: no cover - a mistake here
    raise RuntimeError("the audit device would write a secret field in clear")


def load_hmac_key(path: Path) -> bytes:
    """The installation's audit HMAC key; created (mode 0600) on first use."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    try:
        os.write(fd, secrets.token_bytes(KEY_BYTES).hex().encode())
    finally:
        os.close(fd)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(f"{path} must not be readable by others (mode 0600)")
    key = bytes.fromhex(path.read_text().strip())
    if len(key) < KEY_BYTES:
        raise ValueError(f"{path} does not hold a {KEY_BYTES}-byte key")
    return key


class AuditDevice:
    """Vault-shaped request and response records with secrets HMAC'd."""

    def __init__(self, log: AuditLog, key: bytes) -> None:
        self._log = log
        self._key = key

    def hash(self, value: str) -> str:
        """``hmac-sha256:<hex>`` of ``value`` (what ``sys/audit-hash`` answers)."""
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
        return HMAC_PREFIX + digest

    def log_request(self, record: AuditRecord) -> None:
        self._log.append("request", **self._render("request", record, None))

    def log_response(self, record: AuditRecord, response: dict[str, Any]) -> None:
        self._log.append("response", **self._render("response", record, response))

    def log_event(self, event: str, **fields: str) -> None:
        """An internal event (a lease reaped on expiry); ``fields`` are clear ids."""
        self._log.append(event, type=event, **fields)

    def _render(
        self, kind: str, record: AuditRecord, response: dict[str, Any] | None
    ) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "type": kind,
            "auth": self._auth(record),
            "request": {
                "id": record.id,
                "operation": record.operation,
                "path": record.path,
                "data": self._salt(record.data, clear=REQUEST_CLEAR_KEYS),
                "remote_address": record.remote_address,
            },
            "error": record.error or "",
        }
        if response is not None:
            rendered["response"] = self._salt(response)
        if record.jti is not None:
            rendered["jti"] = record.jti
        if record.lease_id is not None:
            rendered["lease_id"] = record.lease_id
        return rendered

    def _auth(self, record: AuditRecord) -> dict[str, Any]:
        if record.auth is None:
            token = record.client_token
            return {"client_token": self.hash(token)} if token else {}
        info = record.auth
        return {
            "client_token": self.hash(record.client_token or ""),
            "accessor": self.hash(info.accessor),
            "display_name": f"jwt-{info.spiffe_id}",
            "policies": list(info.policies),
            "metadata": {"spiffe_id": info.spiffe_id},
            "token_type": "service",
        }

    def _salt(
        self, value: Any, key: str | None = None, *, clear: frozenset[str] = CLEAR_KEYS
    ) -> Any:
        if key in clear:
            return value
        if isinstance(value, str):
            return self.hash(value)
        if isinstance(value, dict):
            return {
                str(k): self._salt(v, str(k), clear=clear) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._salt(v, clear=clear) for v in value]
        return value


class AuditRecord:
    """What the device records about one request; filled in as it is handled."""

    def __init__(
        self,
        *,
        id: str,
        operation: str,
        path: str,
        data: dict[str, Any],
        remote_address: str,
        client_token: str | None,
    ) -> None:
        self.id = id
        self.operation = operation
        self.path = path
        self.data = data
        self.remote_address = remote_address
        self.client_token = client_token
        self.auth: TokenInfo | None = None
        self.jti: str | None = None
        self.lease_id: str | None = None
        self.error: str | None = None

    def __repr__(self) -> str:
        return f"AuditRecord(id={self.id!r}, path={self.path!r}, jti={self.jti!r})"
