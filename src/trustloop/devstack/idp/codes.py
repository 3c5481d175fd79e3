"""Authorization codes (RFC 6749 §4.1.2): single use, 60 seconds, bound.

A code is a random 256-bit string; the IdP keeps only its SHA-256. It is bound
to the client, the redirect URI and the PKCE challenge of the request it answers,
and to the sign-in session it was issued in. §4.1.2: "If an authorization code is
used more than once, the authorization server MUST deny the request and SHOULD
revoke (when possible) all tokens previously issued based on that
authorization code": a used code is remembered until it would have expired, and
presenting it again reports the session it belongs to, which the caller ends.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from trustloop.devstack.jwtcheck import Clock

CODE_TTL_S = 60


@dataclass(frozen=True)
class CodeGrant:
    """What a code stands for (the request it answered and the session)."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    scope: str
    nonce: str | None
    sid: str


@dataclass
class _Entry:
    grant: CodeGrant
    expires: float
    used: bool = False


class CodeReplayedError(Exception):
    """The code was already redeemed; ``sid`` names the session to end."""

    def __init__(self, sid: str) -> None:
        super().__init__("the authorization code was already used")
        self.sid = sid


class AuthorizationCodes:
    """Issues codes and redeems each one once."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._codes: dict[str, _Entry] = {}  # sha256(code) -> entry

    def issue(self, grant: CodeGrant) -> str:
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._forget_expired()
            self._codes[_digest(code)] = _Entry(grant, self._clock() + CODE_TTL_S)
        return code

    def redeem(self, code: str) -> CodeGrant | None:
        """The grant of an unexpired, unused code; None if unknown or expired.

        Raises :class:`CodeReplayedError` for a code redeemed before.
        """
        with self._lock:
            entry = self._codes.get(_digest(code))
            if entry is None or entry.expires <= self._clock():
                return None
            if entry.used:
                raise CodeReplayedError(entry.grant.sid)
            entry.used = True
            return entry.grant

    def _forget_expired(self) -> None:
        now = self._clock()
        for key in [k for k, e in self._codes.items() if e.expires <= now]:
            del self._codes[key]


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
