"""The UserInfo endpoint (OIDC Core 1.0 §5.3), ``GET``/``POST /oauth2/userinfo``.

The bearer is one of this IdP's active access tokens (RFC 6750 §2.1); the answer
is ``sub``, ``name`` and ``preferred_username``. Anything else is 401 with
``WWW-Authenticate: Bearer error="invalid_token"`` (§5.3.3, RFC 6750 §3.1),
saying nothing about why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response

from trustloop.devstack.demo import CLINICIANS
from trustloop.devstack.idp.errors import NO_STORE

if TYPE_CHECKING:
    from starlette.requests import Request

    from trustloop.devstack.idp.tokens import AccessTokens


class UserInfo:
    """The handler."""

    def __init__(self, access_tokens: AccessTokens) -> None:
        self._access_tokens = access_tokens

    async def handle(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        claims = None
        if scheme.lower() == "bearer" and token.strip():
            claims = self._access_tokens.active_claims(token.strip())
        clinician = None
        if claims is not None:
            clinician = next((c for c in CLINICIANS if c.sub == claims["sub"]), None)
        if clinician is None:
            body = {"error": "invalid_token", "error_description": "bearer required"}
            headers = {**NO_STORE, "WWW-Authenticate": 'Bearer error="invalid_token"'}
            return JSONResponse(body, status_code=401, headers=headers)
        answer = {
            "sub": clinician.sub,
            "name": clinician.name,
            "preferred_username": clinician.username,
        }
        return JSONResponse(answer, headers=NO_STORE)
