"""Issuing and checking the IdP's tokens.

- Access tokens follow RFC 9068 (JWT profile for OAuth 2.0 access tokens): header
  ``typ: at+jwt``; claims ``iss``, ``sub``, ``aud`` (the MCP resource), ``client_id``,
  ``scope``, ``role``, ``auth_time``, ``iat``, ``exp`` (15 minutes), ``jti``.
- On-behalf-of tokens are the RFC 8693 answer to a token exchange: ``sub`` (the
  clinician), ``act.sub`` (the actor's SPIFFE ID, RFC 8693 §4.1), ``client_id``,
  ``aud`` (Vault), ``authorization_details`` as granted (RFC 9396 §7), ``iat``,
  ``exp`` = ``iat`` + 60, a uuid4 ``jti``.

Claims are documented in docs/contracts.md ("IdP").
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trustloop.devstack.demo import Clinician
from trustloop.devstack.idp.keys import SigningKeys
from trustloop.devstack.jwtcheck import (
    Clock,
    JwksCache,
    JwtInvalidError,
    JwtValidator,
)
from trustloop.identity.rar import AuthorizationDetail

ACCESS_TOKEN_TTL_S = 15 * 60
OBO_TTL_S = 60
ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105  (RFC 9068 §2.1 media type, no secret)
OBO_TYP = "JWT"


@dataclass(frozen=True)
class Issued:
    """A freshly signed token and its claims; the token never appears in a repr."""

    token: str = field(repr=False)
    claims: dict[str, Any]

    @property
    def jti(self) -> str:
        jti: str = self.claims["jti"]
        return jti

    @property
    def expires_in(self) -> int:
        return int(self.claims["exp"] - self.claims["iat"])


class TokenIssuer:
    """Signs access and OBO tokens with the active key."""

    def __init__(
        self,
        keys: SigningKeys,
        *,
        issuer: str,
        mcp_resource: str,
        clock: Clock = time.time,
    ) -> None:
        if not issuer or not mcp_resource:
            raise ValueError("a TokenIssuer needs an issuer and the MCP resource")
        self._keys = keys
        self._issuer = issuer
        self._mcp_resource = mcp_resource
        self._clock = clock

    def access_token(
        self,
        clinician: Clinician,
        *,
        client_id: str,
        scope: str,
        auth_time: int | None = None,
    ) -> Issued:
        """An RFC 9068 access token for the MCP resource."""
        now = int(self._clock())
        claims = {
            "iss": self._issuer,
            "sub": clinician.sub,
            "aud": [self._mcp_resource],
            "client_id": client_id,
            "scope": scope,
            "role": clinician.role,
            "auth_time": now if auth_time is None else auth_time,
            "iat": now,
            "exp": now + ACCESS_TOKEN_TTL_S,
            "jti": str(uuid.uuid4()),
        }
        return Issued(self._keys.sign(claims, typ=ACCESS_TOKEN_TYP), claims)

    def obo_token(
        self,
        *,
        sub: str,
        actor: str,
        audience: str,
        details: Sequence[AuthorizationDetail],
    ) -> Issued:
        """A 60-second on-behalf-of token (RFC 8693 §4.1 ``act``)."""
        now = int(self._clock())
        claims = {
            "iss": self._issuer,
            "sub": sub,
            "aud": audience,
            "act": {"sub": actor},
            "client_id": actor,
            "authorization_details": [d.model_dump(mode="json") for d in details],
            "iat": now,
            "exp": now + OBO_TTL_S,
            "jti": str(uuid.uuid4()),
        }
        return Issued(self._keys.sign(claims, typ=OBO_TYP), claims)


class AccessTokens:
    """Recognises this IdP's own, still active access tokens.

    Checked: ES256 signature by one of our published keys, ``typ`` at+jwt, ``iss``,
    ``exp``, ``aud`` containing the MCP resource, and that the ``jti`` has not been
    revoked. Revocation is in memory (the ``/oauth2/revoke`` endpoint comes later).
    """

    def __init__(
        self,
        keys: SigningKeys,
        *,
        issuer: str,
        mcp_resource: str,
        clock: Clock = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = mcp_resource
        self._clock = clock
        self._revoked: set[str] = set()
        self._validator = self._build_validator()

    def _build_validator(self) -> tuple[str, JwtValidator]:
        cache = JwksCache(keys=self._keys.public_keys())
        validator = JwtValidator(
            cache, audience=self._audience, issuer=self._issuer, clock=self._clock
        )
        return self._keys.active_kid, validator

    def revoke(self, jti: str) -> None:
        self._revoked.add(jti)

    def active_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of an active access token of ours, else None."""
        kid, validator = self._validator
        if kid != self._keys.active_kid:  # the keys rotated: pick up the new JWKS
            self._validator = self._build_validator()
            kid, validator = self._validator
        try:
            claims = validator.verify(token, typ=ACCESS_TOKEN_TYP)
        except JwtInvalidError:
            return None
        if not isinstance(claims.get("jti"), str) or claims["jti"] in self._revoked:
            return None
        if not isinstance(claims.get("sub"), str):
            return None
        return claims
