"""Server-side sessions: the only place the clinician's tokens live.

The browser holds one opaque random id in a cookie (``HttpOnly``, ``SameSite=Lax``
so the IdP's redirect back still carries it, ``Secure`` and the ``__Host-`` prefix
when the app is served over HTTPS). Everything else (the sign-in in flight, the
tokens, the conversations) stays in this process's memory: a restart of the app
means signing in again.

A session ends after :data:`IDLE_TIMEOUT_S` without a request or
:data:`ABSOLUTE_TIMEOUT_S` after it began, whichever comes first; the id changes
when the clinician signs in (no session fixation).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trustloop.app.activity import Conversation

if TYPE_CHECKING:
    from collections.abc import Callable

    from trustloop.app.oidc import LoginRequest, Tokens

IDLE_TIMEOUT_S = 30 * 60.0
ABSOLUTE_TIMEOUT_S = 12 * 3600.0
LOGIN_TIMEOUT_S = 10 * 60.0
MAX_SESSIONS = 10_000
MAX_CONVERSATIONS = 50


@dataclass(eq=False)
class Session:
    """One browser's session; never printed with its id or tokens."""

    id: str = field(repr=False)
    created_at: float
    last_seen: float
    login: LoginRequest | None = field(default=None, repr=False)
    login_at: float = 0.0
    tokens: Tokens | None = field(default=None, repr=False)
    conversations: OrderedDict[str, Conversation] = field(
        default_factory=OrderedDict, repr=False
    )
    # Refresh tokens rotate and a reused one ends the sign-in at the IdP: one
    # refresh at a time per session.
    refresh_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def signed_in(self) -> bool:
        return self.tokens is not None

    def new_conversation(self) -> Conversation:
        """A conversation with a fresh id (the runtime session id)."""
        conversation = Conversation.new()
        self.conversations[conversation.id] = conversation
        while len(self.conversations) > MAX_CONVERSATIONS:
            self.conversations.popitem(last=False)
        return conversation

    def conversation(self, conversation_id: str) -> Conversation | None:
        """This session's conversation ``conversation_id``; another's is None."""
        return self.conversations.get(conversation_id)


class SessionStore:
    """Sessions by id, in memory; expired ones vanish on the next look-up."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        absolute_timeout_s: float = ABSOLUTE_TIMEOUT_S,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self._clock = clock
        self._idle = idle_timeout_s
        self._absolute = absolute_timeout_s
        self._max = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self) -> Session:
        """A new, signed-out session with an unguessable id (256 bits)."""
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), created_at=now, last_seen=now)
        self._sessions[session.id] = session
        self._evict()
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session ``session_id``, touched; None if unknown or expired."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if self._expired(session, now):
            self.remove(session)
            return None
        session.last_seen = now
        self._sessions.move_to_end(session.id)
        return session

    def rotate(self, session: Session) -> Session:
        """The same session under a new id; the old id stops working."""
        self._sessions.pop(session.id, None)
        session.id = secrets.token_urlsafe(32)
        self._sessions[session.id] = session
        return session

    def remove(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def start_login(self, session: Session, login: LoginRequest) -> None:
        """Remember the sign-in in flight; it must finish within LOGIN_TIMEOUT_S."""
        session.login = login
        session.login_at = self._clock()

    def login_expired(self, session: Session) -> bool:
        if session.login is None:
            return True
        return self._clock() - session.login_at > LOGIN_TIMEOUT_S

    def _expired(self, session: Session, now: float) -> bool:
        idle = now - session.last_seen > self._idle
        return idle or now - session.created_at > self._absolute

    def _evict(self) -> None:
        """Drop expired sessions, then, beyond the cap, the least recently used
        signed-out one (anyone can start those: they must not push a signed-in
        clinician out), and only when none is left, the least recently used."""
        now = self._clock()
        for session in [s for s in self._sessions.values() if self._expired(s, now)]:
            self.remove(session)
        while len(self._sessions) > self._max:
            idle = next((s for s in self._sessions.values() if not s.signed_in), None)
            if idle is None:
                self._sessions.popitem(last=False)
            else:
                self.remove(idle)


@dataclass(frozen=True)
class CookiePolicy:
    """How the session cookie is named and flagged for the app's own URL."""

    secure: bool

    @classmethod
    def for_url(cls, app_url: str) -> CookiePolicy:
        return cls(secure=app_url.lower().startswith("https://"))

    @property
    def name(self) -> str:
        # RFC 6265bis §4.1.3.2: __Host- needs Secure, Path=/ and no Domain.
        return "__Host-trustloop" if self.secure else "trustloop_session"
