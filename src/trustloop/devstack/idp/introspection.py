"""Token introspection (RFC 7662) for workloads holding a JWT-SVID.

The caller authenticates with a JWT-SVID client assertion (RFC 7662 §2.1 requires
some authorization; a failure is ``invalid_client``, 401). The answer is
``{"active": false}`` and nothing else for any token that is not an active access
token of this IdP (RFC 7662 §2.2: no reason is given); otherwise the token's
``iss``, ``sub``, ``aud``, ``client_id``, ``scope``, ``exp``, ``iat`` and ``jti``.

Only the resource server a token is meant for learns that it is active (RFC 7662
§4): each workload that may introspect is mapped to the resource it serves, and a
token whose ``aud`` does not name that resource is ``{"active": false}`` to it.
Any other workload of the trust domain (the agent runtime, the auditor) learns
nothing about a clinician's token. Each call is one ``token_introspected`` audit
event (the token's ``jti`` when it is active, never the token; ``audience_mismatch``
when an active token was hidden from a caller it is not meant for).
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
        resources: Mapping[str, str],
    ) -> None:
        """``resources``: SPIFFE ID of each resource server -> the ``aud`` it serves."""
        self._clients = clients
        self._access_tokens = access_tokens
        self._audit = audit
        self._resources = dict(resources)

    async def __call__(self, form: Mapping[str, str]) -> dict[str, Any]:
        client = await self._clients.workload(form)
        token = form.get("token")
        if not token:
            raise invalid_request("token is required")

        claims = self._access_tokens.active_claims(token)
        hidden = claims is not None and not self._meant_for(client, claims)
        self._audit.append(
            "token_introspected",
            client_id=client,
            jti=claims["jti"] if claims else None,
            active=claims is not None and not hidden,
            **({"audience_mismatch": True} if hidden else {}),
        )
        if hidden:
            claims = None

        if claims is None:
            return {"active": False}
        answer = {name: claims[name] for name in _REPORTED if name in claims}
        return {"active": True, **answer, "token_type": "Bearer"}

    def _meant_for(self, client: str, claims: Mapping[str, Any]) -> bool:
        resource = self._resources.get(client)
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        return resource is not None and resource in audiences
