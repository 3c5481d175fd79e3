"""The token answer of a sign-in (RFC 6749 §5.1, OIDC Core §3.1.3.3).

One place issues what a sign-in session gets from ``/oauth2/token``, whichever
grant it came by (authorization code, refresh token, device code): an RFC 9068
access token carrying the session's ``sid``, ``acr``, ``amr`` and ``auth_time``,
a new rotating refresh token, and (for an ``openid`` request that is not a
refresh) an ID token. It writes the one audit event of the grant (``signed_in``
or ``token_refreshed``, with ids only).
"""

from __future__ import annotations

from typing import Any

import structlog

from trustloop.audit.chain import AuditLog
from trustloop.devstack.idp.id_tokens import IdTokens
from trustloop.devstack.idp.refresh import RefreshTokens
from trustloop.devstack.idp.sessions import SignInSession
from trustloop.devstack.idp.tokens import TokenIssuer

log = structlog.get_logger("trustloop.devstack.idp")


class SignInTokens:
    """Issues a session's access, ID and refresh tokens, and audits it."""

    def __init__(
        self,
        *,
        issuer: TokenIssuer,
        id_tokens: IdTokens,
        refresh: RefreshTokens,
        audit: AuditLog,
    ) -> None:
        self._issuer = issuer
        self._id_tokens = id_tokens
        self._refresh = refresh
        self._audit = audit

    def issue(
        self,
        session: SignInSession,
        *,
        scope: str,
        nonce: str | None,
        event: str,
        grant: str,
    ) -> dict[str, Any]:
        access = self._issuer.access_token(
            session.clinician,
            client_id=session.client_id,
            scope=scope,
            auth_time=session.auth_time,
            sid=session.sid,
            extra={"acr": session.acr, "amr": list(session.amr)},
        )
        body: dict[str, Any] = {
            "access_token": access.token,
            "token_type": "Bearer",
            "expires_in": access.expires_in,
            "scope": scope,
            "refresh_token": self._refresh.issue(session, scope=scope),
        }
        if "openid" in scope.split() and event == "signed_in":
            body["id_token"] = self._id_tokens.issue(
                session, nonce=nonce, access_token=access.token
            )

        self._audit.append(
            event,
            sub=session.clinician.sub,
            sid=session.sid,
            client_id=session.client_id,
            jti=access.jti,
            amr=list(session.amr),
            grant=grant,
        )
        log.info(event, sub=session.clinician.sub, sid=session.sid, jti=access.jti)
        return body
