"""The resource owner password grant (RFC 6749 §4.3), for the CLI in the local profile.

Dev-only: the demo clinicians sign in from the CLI with the passwords in
``<state>/idp/demo-users.json``. A wrong username and a wrong password get the same
``invalid_grant`` answer (RFC 6749 §5.2), and cost the same scrypt time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio.to_thread
import structlog

from trustloop.audit.chain import AuditLog
from trustloop.devstack.demo import by_username
from trustloop.devstack.idp.client_auth import public_cli_client
from trustloop.devstack.idp.errors import OAuthProblem, invalid_request
from trustloop.devstack.idp.tokens import TokenIssuer
from trustloop.devstack.idp.users import DemoUsers

GRANT_TYPE = "password"
# Scopes the CLI may ask for; the default when it names none.
ALLOWED_SCOPES = frozenset({"openid", "profile"})
DEFAULT_SCOPE = "openid profile"

log = structlog.get_logger("trustloop.devstack.idp")


class PasswordGrant:
    """``grant_type=password`` at ``/oauth2/token``."""

    def __init__(
        self, *, users: DemoUsers, issuer: TokenIssuer, audit: AuditLog
    ) -> None:
        self._users = users
        self._issuer = issuer
        self._audit = audit

    async def __call__(self, form: Mapping[str, str]) -> dict[str, Any]:
        client_id = public_cli_client(form)
        username = form.get("username", "")
        password = form.get("password", "")
        if not username or not password:
            raise invalid_request("username and password are required")
        scope = _scope(form.get("scope"))

        clinician = await anyio.to_thread.run_sync(
            self._users.authenticate, username, password
        )
        if clinician is None:
            self._failed(username, client_id)
            raise OAuthProblem("invalid_grant", "the username or password is wrong")

        issued = self._issuer.access_token(clinician, client_id=client_id, scope=scope)
        self._audit.append(
            "signed_in",
            sub=clinician.sub,
            client_id=client_id,
            jti=issued.jti,
            method="password",
        )
        log.info("signed_in", sub=clinician.sub, jti=issued.jti)
        return {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": scope,
        }

    def _failed(self, username: str, client_id: str) -> None:
        # Only a known username is recorded: a mistyped one may be a password.
        known = by_username(username)
        sub = known.sub if known else None
        self._audit.append(
            "sign_in_failed", sub=sub, client_id=client_id, method="password"
        )
        log.info("sign_in_failed", sub=sub)


def _scope(requested: str | None) -> str:
    if requested is None:
        return DEFAULT_SCOPE
    scopes = requested.split()
    if not scopes or not set(scopes) <= ALLOWED_SCOPES:
        raise OAuthProblem("invalid_scope", "the requested scope is not offered")
    return " ".join(scopes)
