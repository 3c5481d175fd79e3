"""Client authentication at the token and introspection endpoints.

Workloads authenticate with a JWT-SVID as an RFC 7523 §2.2 client assertion
(``private_key_jwt`` in OIDC terms), never with a secret: ``client_assertion_type``
must be ``urn:ietf:params:oauth:client-assertion-type:jwt-bearer`` and the assertion
a JWT-SVID of our trust domain whose ``aud`` contains the issuer (RFC 7523 §3 item 3).
The client's identity is the SVID's SPIFFE ID; a ``client_id`` sent alongside must
equal it (RFC 7521 §4.2).

The CLI is the one public client (RFC 6749 §2.1): it sends ``client_id`` only and may
use nothing but the password grant.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import anyio.to_thread

from trustloop.devstack.idp.errors import OAuthProblem, invalid_client
from trustloop.devstack.jwtcheck import (
    Clock,
    JwksCache,
    JwtInvalidError,
    verify_jwt_svid_claims,
)
from trustloop.identity.oauth import CLI_CLIENT_ID, JWT_BEARER_ASSERTION


class ClientAuthenticator:
    """Authenticates workloads by JWT-SVID and recognises the CLI public client."""

    def __init__(
        self,
        svid_keys: JwksCache,
        *,
        issuer: str,
        trust_domain: str,
        clock: Clock = time.time,
    ) -> None:
        if not issuer or not trust_domain:
            raise ValueError("client authentication needs an issuer and trust domain")
        self._keys = svid_keys
        self._issuer = issuer
        self._trust_domain = trust_domain
        self._clock = clock

    async def workload(self, form: Mapping[str, str]) -> str:
        """The SPIFFE ID of the client that signed ``client_assertion``."""
        if form.get("client_assertion_type") != JWT_BEARER_ASSERTION:
            raise invalid_client("a JWT-SVID client assertion is required")
        assertion = form.get("client_assertion", "")
        try:
            client = await self.svid(assertion)
        except JwtInvalidError as exc:
            raise invalid_client() from exc
        claimed = form.get("client_id")
        if claimed is not None and claimed != client:
            raise invalid_client()
        return client

    async def svid(self, token: str) -> str:
        """Validate a JWT-SVID for this issuer; may fetch the trust bundle."""
        sub: str = (await self.svid_claims(token))["sub"]
        return sub

    async def svid_claims(self, token: str) -> dict[str, Any]:
        """:meth:`svid`, answering every claim (``sub``, ``jti``, ``exp``...)."""
        # In a worker thread: an unknown kid makes the cache fetch the JWKS over HTTP.
        return await anyio.to_thread.run_sync(self._verify_svid, token)

    def _verify_svid(self, token: str) -> dict[str, Any]:
        return verify_jwt_svid_claims(
            token,
            self._keys,
            audience=self._issuer,
            trust_domain=self._trust_domain,
            clock=self._clock,
        )


def public_cli_client(form: Mapping[str, str]) -> str:
    """The CLI's client id; refuses any other client and any credential."""
    if "client_assertion" in form or "client_secret" in form:
        raise OAuthProblem(
            "invalid_client", "the CLI is a public client and sends no credential", 401
        )
    if form.get("client_id") != CLI_CLIENT_ID:
        raise invalid_client("unknown client")
    return CLI_CLIENT_ID
