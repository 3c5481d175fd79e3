"""Rotating refresh tokens (RFC 6749 §6, OAuth 2.0 Security BCP RFC 9700 §4.14).

A refresh token is an opaque 256-bit random string; the IdP keeps its SHA-256
only. It belongs to one sign-in session and one client. Each use answers a new
refresh token and retires the one presented (rotation, RFC 9700 §4.14.2). A
retired token presented again means two parties hold it, and the IdP cannot tell
which is the clinician: the whole sign-in session ends (its access tokens and
every refresh token), audited as ``refresh_token_reused``. Revoking a refresh
token (RFC 7009) ends its session too.

Errors: an unknown, expired, reused or ended-session token is ``invalid_grant``
(§5.2); a token of another client is ``invalid_grant`` as well (§6: it "MUST
validate the refresh token" was issued to the client).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from trustloop.audit.chain import AuditLog
from trustloop.devstack.idp.clients import PublicClients
from trustloop.devstack.idp.errors import OAuthProblem, invalid_request
from trustloop.devstack.idp.sessions import SignInSession, SignInSessions
from trustloop.devstack.jwtcheck import Clock

if TYPE_CHECKING:
    from trustloop.devstack.idp.sign_in_tokens import SignInTokens

GRANT_TYPE = "refresh_token"

log = structlog.get_logger("trustloop.devstack.idp")


@dataclass
class _Entry:
    sid: str
    client_id: str
    scope: str
    retired: bool = False


class RefreshTokens:
    """The refresh tokens of every live session, by hash."""

    def __init__(
        self, sessions: SignInSessions, audit: AuditLog, *, clock: Clock = time.time
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, _Entry] = {}

    def issue(self, session: SignInSession, *, scope: str) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._forget_ended()
            entry = _Entry(session.sid, session.client_id, scope)
            self._tokens[_digest(token)] = entry
        return token

    def rotate(self, token: str, client_id: str) -> tuple[SignInSession, str]:
        """Retire ``token``; its session and scope, for issuing the next one."""
        with self._lock:
            entry = self._tokens.get(_digest(token))
            reused = entry is not None and entry.retired
            if entry is not None:
                entry.retired = True
        if entry is None:
            raise OAuthProblem("invalid_grant", "the refresh token is invalid")
        if reused:
            self._reused(entry)
        session = self._sessions.get(entry.sid)
        if session is None or entry.client_id != client_id:
            raise OAuthProblem("invalid_grant", "the refresh token is invalid")
        return session, entry.scope

    def revoke(self, token: str, client_id: str) -> str | None:
        """RFC 7009: end the session of ``token``; its ``sid``, None if unknown.

        Raises ``unauthorized_client`` for a token issued to another client.
        """
        with self._lock:
            entry = self._tokens.get(_digest(token))
        if entry is None:
            return None
        if entry.client_id != client_id:
            raise OAuthProblem(
                "unauthorized_client", "the token was not issued to this client"
            )
        self._sessions.end(entry.sid)
        return entry.sid

    def _reused(self, entry: _Entry) -> None:
        self._sessions.end(entry.sid)
        self._audit.append(
            "refresh_token_reused", sid=entry.sid, client_id=entry.client_id
        )
        log.warning("refresh_token_reused", sid=entry.sid)
        raise OAuthProblem("invalid_grant", "the refresh token is invalid")

    def _forget_ended(self) -> None:
        # A token of a session that is over can never work again: drop it.
        for key in [
            k for k, e in self._tokens.items() if self._sessions.get(e.sid) is None
        ]:
            del self._tokens[key]


class RefreshGrant:
    """``grant_type=refresh_token`` at ``/oauth2/token``."""

    def __init__(
        self,
        *,
        clients: PublicClients,
        refresh: RefreshTokens,
        tokens: SignInTokens,
    ) -> None:
        self._clients = clients
        self._refresh = refresh
        self._tokens = tokens

    async def __call__(self, form: Mapping[str, str]) -> dict[str, Any]:
        client = self._clients.authenticate(form)
        token = form.get("refresh_token")
        if not token:
            raise invalid_request("refresh_token is required")
        if "scope" in form:
            # §6 lets a client narrow the scope; ours asks for none, so refuse it.
            raise OAuthProblem("invalid_scope", "scope cannot change on refresh")

        session, scope = self._refresh.rotate(token, client.client_id)
        return self._tokens.issue(
            session, scope=scope, nonce=None, event="token_refreshed", grant=GRANT_TYPE
        )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
