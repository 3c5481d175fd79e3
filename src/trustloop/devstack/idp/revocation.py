"""Token revocation (RFC 7009) and session logout, at ``/oauth2/revoke`` and
``/oauth2/logout``.

Client authentication is the IdP's usual (RFC 7009 §2.1): a workload sends a JWT-SVID
client assertion; a public client (the CLI, the web app) sends its ``client_id``
only. RFC 7009
§2.1: the server "verifies whether the token was issued to the client making the
revocation request"; a token of another client is refused with
``unauthorized_client``. RFC 7009 §2.2: an invalid, expired, unknown or already
revoked token is answered 200 all the same, and ``token_type_hint`` is only a hint:
every token is tried as an access token, then as a refresh token. Revoking a
refresh token ends its whole sign-in session (:mod:`.refresh`).

Logout (our shape; Verify's own logout is a browser redirect that needs the login
page): the same form and client authentication as revocation, and the token names
the sign-in session, its ``sid``. Every access token of that session becomes
inactive, whichever it was, and so do its refresh tokens. An invalid token is answered 200, as for revocation.

Audit (``idp.jsonl``): ``token_revoked`` and ``session_logged_out`` with the
client, ``jti`` and ``sid``, never the token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from trustloop.audit.chain import AuditLog
from trustloop.devstack.idp.client_auth import ClientAuthenticator, public_cli_client
from trustloop.devstack.idp.clients import PublicClients
from trustloop.devstack.idp.errors import OAuthProblem, invalid_request
from trustloop.devstack.idp.refresh import RefreshTokens
from trustloop.devstack.idp.sessions import SignInSessions
from trustloop.devstack.idp.tokens import AccessTokens

log = structlog.get_logger("trustloop.devstack.idp")


class Revocation:
    """The ``/oauth2/revoke`` (``session=False``) or ``/oauth2/logout`` handler."""

    def __init__(
        self,
        *,
        clients: ClientAuthenticator,
        access_tokens: AccessTokens,
        audit: AuditLog,
        session: bool = False,
        public: PublicClients | None = None,
        refresh: RefreshTokens | None = None,
        sessions: SignInSessions | None = None,
    ) -> None:
        self._clients = clients
        self._access_tokens = access_tokens
        self._audit = audit
        self._session = session
        self._public = public
        self._refresh = refresh
        self._sessions = sessions

    async def __call__(self, form: Mapping[str, str]) -> dict[str, Any]:
        client = await self._client(form)
        token = form.get("token")
        if not token:
            raise invalid_request("token is required")

        claims = self._access_tokens.verified_claims(token)
        if claims is None:
            self._revoke_refresh(token, client)
            return {}  # RFC 7009 §2.2: nothing to revoke is still a success
        if claims.get("client_id") != client:
            raise OAuthProblem(
                "unauthorized_client", "the token was not issued to this client"
            )

        if self._session:
            self._log_out(claims, client)
        else:
            self._revoke(claims, client)
        return {}

    async def _client(self, form: Mapping[str, str]) -> str:
        if "client_assertion_type" in form or "client_assertion" in form:
            return await self._clients.workload(form)
        if self._public is not None:
            return self._public.authenticate(form).client_id
        return public_cli_client(form)

    def _revoke_refresh(self, token: str, client: str) -> None:
        if self._refresh is None:
            return
        sid = self._refresh.revoke(token, client)
        if sid is None:
            return
        event = "session_logged_out" if self._session else "token_revoked"
        self._audit.append(event, client_id=client, jti=None, sid=sid)
        log.info(event, sid=sid, refresh_token=True)

    def _revoke(self, claims: Mapping[str, Any], client: str) -> None:
        jti, sid = claims["jti"], claims.get("sid")
        # Revoke first: a failed audit write answers 500, but never leaves it live.
        self._access_tokens.revoke(jti, exp=claims.get("exp"))
        self._audit.append("token_revoked", client_id=client, jti=jti, sid=sid)
        log.info("token_revoked", jti=jti, sid=sid)

    def _log_out(self, claims: Mapping[str, Any], client: str) -> None:
        sid = claims.get("sid")
        if not isinstance(sid, str):
            # A token from before sessions had ids: it is its own session.
            self._revoke(claims, client)
            return
        if self._sessions is not None:
            self._sessions.end(sid)  # refresh tokens too
        else:
            self._access_tokens.end_session(sid)
        self._audit.append(
            "session_logged_out", client_id=client, jti=claims["jti"], sid=sid
        )
        log.info("session_logged_out", sid=sid)
