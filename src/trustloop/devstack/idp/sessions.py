"""Sign-in sessions: one ``sid`` per completed login, ended as one.

A session starts when a clinician finishes a login (password and a second factor)
for a client: by the authorization code flow or the device grant. Every token of
it carries its ``sid``: access tokens, the ID token and the refresh tokens.
:meth:`SignInSessions.end` is the one way to end it (logout, a revoked refresh
token, a reused refresh token, a replayed authorization code): its access tokens
turn inactive at once (:meth:`.AccessTokens.end_session`) and its refresh tokens
are refused from then on.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from trustloop.devstack.demo import Clinician
from trustloop.devstack.idp.tokens import AccessTokens
from trustloop.devstack.jwtcheck import Clock

MFA_ACR = "urn:trustloop:acr:mfa"
# A session lives at most this long; its refresh tokens with it (then: log in).
SESSION_TTL_S = 8 * 60 * 60


@dataclass(frozen=True)
class SignInSession:
    """Who signed in, for which client, when and how (``amr``, RFC 8176)."""

    sid: str
    clinician: Clinician
    client_id: str
    auth_time: int
    amr: tuple[str, ...]
    acr: str = MFA_ACR

    @property
    def expires(self) -> int:
        return self.auth_time + SESSION_TTL_S


class SignInSessions:
    """The live sessions, in memory (a restart of the IdP ends them all)."""

    def __init__(self, access_tokens: AccessTokens, *, clock: Clock = time.time):
        self._access_tokens = access_tokens
        self._clock = clock
        self._lock = threading.Lock()
        self._live: dict[str, SignInSession] = {}

    def start(
        self, clinician: Clinician, *, client_id: str, amr: tuple[str, ...]
    ) -> SignInSession:
        session = SignInSession(
            sid=str(uuid.uuid4()),
            clinician=clinician,
            client_id=client_id,
            auth_time=int(self._clock()),
            amr=amr,
        )
        with self._lock:
            self._forget_expired()
            self._live[session.sid] = session
        return session

    def get(self, sid: str) -> SignInSession | None:
        """The session if it is still live (not ended, not expired)."""
        with self._lock:
            session = self._live.get(sid)
        if session is None or session.expires <= self._clock():
            return None
        return session

    def end(self, sid: str) -> None:
        """End the session: its access tokens and refresh tokens stop working."""
        self._access_tokens.end_session(sid)
        with self._lock:
            self._live.pop(sid, None)

    def _forget_expired(self) -> None:
        now = self._clock()
        for sid in [s for s, v in self._live.items() if v.expires <= now]:
            del self._live[sid]
