"""Client tokens issued by the JWT auth method: random, short-lived, kept hashed.

A token is ``hvs.`` plus 256 random bits. The store keeps only its SHA-256, the
SPIFFE ID it was issued to and its expiry, so a memory dump holds no usable token.

Given a ``path``, the store also keeps those records on disk (mode 0600) and reads
the unexpired ones back at start, as Vault keeps tokens in its storage backend: a
restarted stand-in still honours the tokens it issued, so a client is not refused
once for each restart (tests/faults/test_fault_vault_down.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trustloop.devstack.jwtcheck import Clock

TOKEN_PREFIX = "hvs."  # noqa: S105 - a prefix, not a secret
TOKEN_TTL_S = 300


@dataclass(frozen=True)
class TokenInfo:
    """What a client token stands for (never the token itself)."""

    spiffe_id: str
    accessor: str
    policies: tuple[str, ...]
    expires_at: float


@dataclass(frozen=True)
class IssuedToken:
    token: str = field(repr=False)
    info: TokenInfo


class TokenStore:
    """Client tokens by SHA-256; expired ones are forgotten."""

    def __init__(
        self,
        *,
        ttl_s: int = TOKEN_TTL_S,
        clock: Clock = time.time,
        path: Path | None = None,
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._path = path
        self._by_hash: dict[str, TokenInfo] = _load(path) if path else {}
        self._lock = threading.Lock()

    def mint(self, spiffe_id: str, policies: tuple[str, ...]) -> IssuedToken:
        """A fresh token for ``spiffe_id``; valid only once :meth:`keep` stores it."""
        info = TokenInfo(
            spiffe_id=spiffe_id,
            accessor=secrets.token_urlsafe(18),
            policies=policies,
            expires_at=self._clock() + self.ttl_s,
        )
        return IssuedToken(TOKEN_PREFIX + secrets.token_urlsafe(32), info)

    def keep(self, issued: IssuedToken) -> None:
        with self._lock:
            self._forget_expired()
            self._by_hash[_digest(issued.token)] = issued.info
            if self._path is not None:
                _save(self._path, self._by_hash)

    def lookup(self, token: str | None) -> TokenInfo | None:
        """The token's info while it is valid, else None."""
        if not token:
            return None
        with self._lock:
            info = self._by_hash.get(_digest(token))
        if info is None or info.expires_at <= self._clock():
            return None
        return info

    def _forget_expired(self) -> None:
        now = self._clock()
        for key in [k for k, v in self._by_hash.items() if v.expires_at <= now]:
            del self._by_hash[key]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _load(path: Path) -> dict[str, TokenInfo]:
    """The stored records; a missing or unreadable file is an empty store."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {
            str(digest): TokenInfo(
                spiffe_id=str(info["spiffe_id"]),
                accessor=str(info["accessor"]),
                policies=tuple(str(p) for p in info["policies"]),
                expires_at=float(info["expires_at"]),
            )
            for digest, info in raw.items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _save(path: Path, by_hash: dict[str, TokenInfo]) -> None:
    """Replace the file atomically; hashes and metadata only, never a token."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({k: asdict(v) for k, v in by_hash.items()}, out)
    with contextlib.suppress(OSError):
        os.replace(tmp, path)
