"""Token introspection (RFC 7662) for workloads holding a JWT-SVID.

The caller authenticates with a JWT-SVID client assertion (RFC 7662 §2.1 requires
some authorization; a failure is ``invalid_client``, 401). The answer is
``{"active": false}`` and nothing else for any token that is not an active access
token of this IdP (RFC 7662 §2.2: no reason is given); otherwise the token's
``iss``, ``sub``, ``aud``, ``client_id``, ``scope``, ``exp``, ``iat`` and ``jti``.
Each call is one ``token_introspected`` audit event (the token's ``jti`` when it is
active, never the token).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trustloop.audit.chain import AuditLog
from trustloop.devstack.idp.client_auth import ClientAuthenticator
from trustloop.devstack.idp.errors import invalid_request
from trustloop.devstack.idp.tokens import AccessTokens

_REPORTED = ("iss", "sub", "aud", "client_id", "scope", "exp", "iat", "jti")


class Introspection:
    """The ``/oauth2/introspect`` handler."""

    def __init__(
        self,
        *,
        clients: ClientAuthenticator,
        access_tokens: AccessTokens,
        audit: AuditLog,
    ) -> None:
        self._clients = clients
        self._access_tokens = access_tokens
        self._audit = audit

    async def __call__(self, form: Mapping[str, str]) -> dict[str, Any]:
        client = await self._clients.workload(form)
        token = form.get("token")
        if not token:
            raise invalid_request("token is required")

        claims = self._access_tokens.active_claims(token)
        self._audit.append(
            "token_introspected",
            client_id=client,
            jti=claims["jti"] if claims else None,
            active=claims is not None,
        )

        if claims is None:
            return {"active": False}
        answer = {name: claims[name] for name in _REPORTED if name in claims}
        return {"active": True, **answer, "token_type": "Bearer"}
