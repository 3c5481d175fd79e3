"""``grant_type=authorization_code`` (RFC 6749 §4.1.3) with PKCE (RFC 7636 §4.5).

The client (public, no credential) sends ``code``, ``redirect_uri``,
``client_id`` and ``code_verifier``. §4.1.3: the server MUST "ensure that the
authorization code was issued to the authenticated confidential client, or if
the client is public, ensure that the code was issued to ``client_id``", and that
``redirect_uri`` is "identical" to the one of the authorization request. RFC 7636
§4.6: the verifier must hash to the challenge. Any failure is ``invalid_grant``
(§5.2) and the code is spent all the same. A code presented a second time ends
the sign-in session it was issued in (§4.1.2), audited as ``code_replayed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from trustloop.audit.chain import AuditLog
from trustloop.devstack.idp.clients import PublicClients
from trustloop.devstack.idp.codes import AuthorizationCodes, CodeReplayedError
from trustloop.devstack.idp.errors import OAuthProblem, invalid_request
from trustloop.devstack.idp.pkce import verifier_matches
from trustloop.devstack.idp.sessions import SignInSessions
from trustloop.devstack.idp.sign_in_tokens import SignInTokens

GRANT_TYPE = "authorization_code"

log = structlog.get_logger("trustloop.devstack.idp")


class AuthorizationCodeGrant:
    """The token endpoint's half of the authorization code flow."""

    def __init__(
        self,
        *,
        clients: PublicClients,
        codes: AuthorizationCodes,
        sessions: SignInSessions,
        tokens: SignInTokens,
        audit: AuditLog,
    ) -> None:
        self._clients = clients
        self._codes = codes
        self._sessions = sessions
        self._tokens = tokens
        self._audit = audit

    async def __call__(self, form: Mapping[str, str]) -> dict[str, Any]:
        client = self._clients.authenticate(form)
        code, verifier = form.get("code", ""), form.get("code_verifier", "")
        if not code or not form.get("redirect_uri"):
            raise invalid_request("code and redirect_uri are required")
        if not verifier:
            raise invalid_request("code_verifier is required")

        try:
            grant = self._codes.redeem(code)
        except CodeReplayedError as replay:
            self._replayed(replay.sid, client.client_id)
            raise OAuthProblem("invalid_grant", "the code is invalid") from None
        if (
            grant is None
            or grant.client_id != client.client_id
            or grant.redirect_uri != form["redirect_uri"]
            or not verifier_matches(verifier, grant.code_challenge)
        ):
            raise OAuthProblem("invalid_grant", "the code is invalid")
        session = self._sessions.get(grant.sid)
        if session is None:
            raise OAuthProblem("invalid_grant", "the code is invalid")

        return self._tokens.issue(
            session,
            scope=grant.scope,
            nonce=grant.nonce,
            event="signed_in",
            grant=GRANT_TYPE,
        )

    def _replayed(self, sid: str, client_id: str) -> None:
        self._sessions.end(sid)
        self._audit.append("code_replayed", sid=sid, client_id=client_id)
        log.warning("code_replayed", sid=sid)
