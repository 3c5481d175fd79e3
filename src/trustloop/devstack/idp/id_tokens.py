"""ID tokens (OpenID Connect Core 1.0 §2), signed with the IdP's active key.

Claims: ``iss``, ``sub``, ``aud`` (the client), ``exp``, ``iat``, ``auth_time``,
``nonce`` (when the request sent one, §3.1.2.1), ``sid`` (Front-Channel Logout
§3), ``acr``, ``amr`` (RFC 8176 values), ``at_hash`` (§3.1.3.6: the left half of
the SHA-256 of the access token, base64url), ``name`` and
``preferred_username`` (the ``profile`` scope's, §5.1).
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

from trustloop.devstack.idp.keys import SigningKeys
from trustloop.devstack.idp.sessions import SignInSession
from trustloop.devstack.jwtcheck import Clock

ID_TOKEN_TTL_S = 15 * 60
ID_TOKEN_TYP = "JWT"  # noqa: S105  (a JOSE media type, no secret)


class IdTokens:
    """Signs ID tokens for a sign-in session."""

    def __init__(
        self, keys: SigningKeys, *, issuer: str, clock: Clock = time.time
    ) -> None:
        if not issuer:
            raise ValueError("ID tokens need an issuer")
        self._keys = keys
        self._issuer = issuer
        self._clock = clock

    def issue(
        self, session: SignInSession, *, nonce: str | None, access_token: str
    ) -> str:
        now = int(self._clock())
        clinician = session.clinician
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": clinician.sub,
            "aud": session.client_id,
            "iat": now,
            "exp": now + ID_TOKEN_TTL_S,
            "auth_time": session.auth_time,
            "sid": session.sid,
            "acr": session.acr,
            "amr": list(session.amr),
            "at_hash": at_hash(access_token),
            "name": clinician.name,
            "preferred_username": clinician.username,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return self._keys.sign(claims, typ=ID_TOKEN_TYP)


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6 for ES256: left half of SHA-256, base64url, no padding."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
