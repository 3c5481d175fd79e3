"""Client tokens issued by the JWT auth method: random, short-lived, kept hashed.

A token is ``hvs.`` plus 256 random bits. The store keeps only its SHA-256, the
SPIFFE ID it was issued to and its expiry, so a memory dump holds no usable token.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field

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

    def __init__(self, *, ttl_s: int = TOKEN_TTL_S, clock: Clock = time.time) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._by_hash: dict[str, TokenInfo] = {}
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
