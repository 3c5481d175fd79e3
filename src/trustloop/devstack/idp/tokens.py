"""Issuing and checking the IdP's tokens.

- Access tokens follow RFC 9068 (JWT profile for OAuth 2.0 access tokens): header
  ``typ: at+jwt``; claims ``iss``, ``sub``, ``aud`` (the MCP resource), ``client_id``,
  ``scope``, ``role``, ``auth_time``, ``iat``, ``exp`` (15 minutes), ``jti``,
  ``sid`` (the sign-in session, ended together by a logout) and, for a login
  with a second factor, ``acr`` and ``amr``.
- On-behalf-of tokens are the RFC 8693 answer to a token exchange: ``sub`` (the
  clinician), ``act.sub`` (the actor's SPIFFE ID, RFC 8693 §4.1), ``client_id``,
  ``aud`` (Vault), ``authorization_details`` as granted (RFC 9396 §7), ``iat``,
  ``exp`` = ``iat`` + 60, a uuid4 ``jti``.

Claims are documented in docs/contracts.md ("IdP").
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trustloop.devstack.demo import Clinician
from trustloop.devstack.idp.keys import SigningKeys
from trustloop.devstack.jwtcheck import (
    LEEWAY_S,
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
        sid: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Issued:
        """An RFC 9068 access token for the MCP resource.

        ``sid`` names the sign-in session (OIDC Front-Channel Logout 1.0 §3); a
        fresh one is made when none is given. Logging out ends every token of it.
        ``extra`` adds claims: the login's ``acr`` and ``amr`` (RFC 9068 §2.2.1).
        """
        now = int(self._clock())
        claims = {
            **(extra or {}),
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
            "sid": sid or str(uuid.uuid4()),
        }
        return Issued(self._keys.sign(claims, typ=ACCESS_TOKEN_TYP), claims)

    def obo_token(
        self,
        *,
        sub: str,
        actor: str,
        audience: str,
        details: Sequence[AuthorizationDetail],
        extra: dict[str, Any] | None = None,
    ) -> Issued:
        """A 60-second on-behalf-of token (RFC 8693 §4.1 ``act``).

        ``extra`` adds claims, e.g. a step-up's ``acr``, ``amr`` and ``auth_time``.
        """
        now = int(self._clock())
        claims: dict[str, Any] = {
            **(extra or {}),
            "iss": self._issuer,
            "sub": sub,
            "aud": audience,
            "act": {"sub": actor},
            "client_id": actor,
            "authorization_details": [d.wire() for d in details],
            "iat": now,
            "exp": now + OBO_TTL_S,
            "jti": str(uuid.uuid4()),
        }
        return Issued(self._keys.sign(claims, typ=OBO_TYP), claims)


class AccessTokens:
    """Recognises this IdP's own, still active access tokens, and revokes them.

    Checked: ES256 signature by one of our published keys, ``typ`` at+jwt, ``iss``,
    ``exp``, ``aud`` containing the MCP resource, that the ``jti`` has not been
    revoked (RFC 7009) and that its sign-in session (``sid``) has not been logged
    out. Revocations are in memory and forgotten once the token could no longer
    be valid anyway.
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
        self._lock = threading.Lock()
        # jti or sid -> when the revocation may be forgotten (epoch seconds)
        self._revoked: dict[str, float] = {}
        self._ended_sessions: dict[str, float] = {}
        self._validator = self._build_validator()

    def _build_validator(self) -> tuple[tuple[str, ...], JwtValidator]:
        published = self._keys.public_keys()
        cache = JwksCache(keys=published)
        validator = JwtValidator(
            cache, audience=self._audience, issuer=self._issuer, clock=self._clock
        )
        return tuple(str(key.kid) for key in published), validator

    def revoke(self, jti: str, *, exp: float | None = None) -> None:
        """Make the token with ``jti`` inactive (until ``exp`` would have anyway)."""
        self._forget_expired()
        with self._lock:
            self._revoked[jti] = self._until(exp)

    def end_session(self, sid: str) -> None:
        """Make every access token of the sign-in session ``sid`` inactive."""
        self._forget_expired()
        with self._lock:
            self._ended_sessions[sid] = self._until(None)

    def verified_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of an unexpired access token of ours, revoked or not."""
        try:
            claims = self._current_validator().verify(token, typ=ACCESS_TOKEN_TYP)
        except JwtInvalidError:
            return None
        if not isinstance(claims.get("jti"), str):
            return None
        if not isinstance(claims.get("sub"), str):
            return None
        return claims

    def active_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of an active access token of ours, else None."""
        claims = self.verified_claims(token)
        if claims is None:
            return None
        with self._lock:
            if claims["jti"] in self._revoked:
                return None
            if claims.get("sid") in self._ended_sessions:
                return None
        return claims

    def still_active(self, jti: str, sid: str | None, exp: float) -> bool:
        """Whether the access token ``jti`` (session ``sid``) is active now.

        For what outlives one request made with the token (a step-up challenge):
        not expired (leeway included), not revoked, its session not ended.
        """
        if self._clock() > exp + LEEWAY_S:
            return False
        with self._lock:
            return jti not in self._revoked and sid not in self._ended_sessions

    def _current_validator(self) -> JwtValidator:
        kids, validator = self._validator
        published = tuple(str(key.kid) for key in self._keys.public_keys())
        if kids != published:  # rotated, or a retired key dropped
            self._validator = self._build_validator()
            kids, validator = self._validator
        return validator

    def _until(self, exp: float | None) -> float:
        # Past this time no token it could concern is still valid (leeway included).
        if exp is None:
            return self._clock() + ACCESS_TOKEN_TTL_S + LEEWAY_S
        return exp + LEEWAY_S

    def _forget_expired(self) -> None:
        now = self._clock()
        with self._lock:
            for table in (self._revoked, self._ended_sessions):
                for key in [k for k, until in table.items() if until < now]:
                    del table[key]
