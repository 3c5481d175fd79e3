"""The trust domain's JWT authority: one in-memory ES256 key that signs JWT-SVIDs.

Follows the SPIFFE JWT-SVID standard (§2 header: ``alg``, ``kid``, ``typ``; §3
claims: ``sub``, ``aud``, ``exp``) and serves its public half as a SPIFFE bundle
JWKS (Trust Domain and Bundle standard §4: ``"use": "jwt-svid"``, ``kid``
required). The private key lives only in this process; it is never written out.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from joserfc import jws, jwt
from joserfc.jwk import ECKey

from trustloop.devstack.jwtcheck import JwksCache, verify_jwt_svid

ALGORITHM = "ES256"
JWT_SVID_TTL_S = 300
Clock = Callable[[], float]


class JwtAuthority:
    """Mints and checks JWT-SVIDs for one trust domain."""

    def __init__(self, trust_domain: str, *, clock: Clock = time.time) -> None:
        if not trust_domain:
            raise ValueError("a JWT authority needs a trust domain")
        self.trust_domain = trust_domain
        self._clock = clock
        self._key = ECKey.generate_key("P-256", auto_kid=False)
        # RFC 7638 thumbprint: stable for the key, reveals nothing else.
        self.kid: str = self._key.thumbprint()
        self._public = ECKey.import_key(self._key.as_dict(private=False, kid=self.kid))
        self._verify_keys = JwksCache(keys=[self._public])
        self.jwks: bytes = self._bundle_document()

    def _bundle_document(self) -> bytes:
        jwk = self._key.as_dict(private=False, kid=self.kid, use="jwt-svid")
        return json.dumps({"keys": [jwk]}, sort_keys=True).encode()

    def mint(self, spiffe_id: str, audience: Sequence[str]) -> str:
        """A signed JWT-SVID for ``spiffe_id``, valid for five minutes, unique ``jti``."""
        if not audience:
            raise ValueError("a JWT-SVID needs an audience")

        now = int(self._clock())
        header = {"alg": ALGORITHM, "kid": self.kid, "typ": "JWT"}
        claims = {
            "sub": spiffe_id,
            "aud": list(audience),
            "iat": now,
            "exp": now + JWT_SVID_TTL_S,
            # Unique per SVID, so a relying party may refuse a replay (RFC 7519
            # §4.1.7); the IdP does for actor tokens.
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])

    def validate(self, token: str, audience: str) -> tuple[str, dict[str, Any]]:
        """SPIFFE ID and claims of a valid JWT-SVID, else ``JwtInvalidError``."""
        spiffe_id = verify_jwt_svid(
            token,
            self._verify_keys,
            audience=audience,
            trust_domain=self.trust_domain,
            clock=self._clock,
        )
        # The signature was verified above, so the payload can be read as is.
        claims: dict[str, Any] = json.loads(jws.extract_compact(token.encode()).payload)
        return spiffe_id, claims
