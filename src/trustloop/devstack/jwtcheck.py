"""JWT validation for the stand-ins: ES256 pinned per key, JWKS fetched over HTTP.

Used by the IdP (its own access tokens, actor and client-assertion JWT-SVIDs) and
the Vault stand-in (JWT-SVID logins, OBO tokens). One bare :class:`JwtInvalidError`
for every failed verification, whose message says no more than "invalid token"
plus a spec-level reason safe to return (STYLE.md: security verdicts say no more
than the spec).

The checks fail closed: an empty audience, issuer or trust domain is refused when
the validator is built, never skipped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

ALGORITHM = "ES256"
LEEWAY_S = 5
Clock = Callable[[], float]


class JwtInvalidError(Exception):
    """The token failed verification. ``str()`` is safe to show to a client."""


class JwksCache:
    """Verification keys by ``kid``: refetched once on an unknown ``kid``, rate-limited.

    A fetched key set replaces the previous one, and is refetched once it is
    ``max_age_s`` old, so a key the issuer withdraws (rotated out, compromised)
    stops verifying within that time. Keeps the last good key set when the JWKS
    endpoint is unreachable. Static ``keys`` are always kept.
    """

    def __init__(
        self,
        jwks_url: str | None = None,
        *,
        keys: Iterable[ECKey] = (),
        min_refresh_s: float = 5.0,
        max_age_s: float = 300.0,
        clock: Clock = time.monotonic,
        http: httpx.Client | None = None,
    ) -> None:
        if jwks_url is None and not keys:
            raise ValueError("a JwksCache needs a JWKS URL or static keys")
        self._url = jwks_url
        self._static: dict[str, ECKey] = {}
        for key in keys:
            if not key.kid:
                raise ValueError("every verification key needs a kid")
            self._static[key.kid] = key
        self._keys = dict(self._static)
        self._min_refresh_s = min_refresh_s
        self._max_age_s = max_age_s
        self._clock = clock
        self._last_fetch = float("-inf")
        self._last_good = float("-inf")
        self._http = http
        self._lock = threading.Lock()

    def key_for(self, kid: str) -> ECKey:
        """The ES256 public key for ``kid``; refetches when unknown or stale."""
        with self._lock:
            key = self._keys.get(kid)
            if (key is None or self._stale()) and self._may_refresh():
                self._refresh()
                key = self._keys.get(kid)
        if key is None:
            raise JwtInvalidError("invalid token: unknown key")
        return key

    def _stale(self) -> bool:
        return self._url is not None and (
            self._clock() - self._last_good >= self._max_age_s
        )

    def _may_refresh(self) -> bool:
        return (
            self._url is not None
            and self._clock() - self._last_fetch >= self._min_refresh_s
        )

    def _refresh(self) -> None:
        self._last_fetch = self._clock()
        try:
            if self._http is not None:
                response = self._http.get(self._url or "")
            else:
                response = httpx.get(self._url or "", timeout=5.0)
            response.raise_for_status()
            keyset = KeySet.import_key_set(_signing_keys(response.json()))  # type: ignore[arg-type]
        except (httpx.HTTPError, ValueError, JoseError):
            return  # keep the last good keys; the caller refuses an unknown kid
        fresh: dict[str, ECKey] = {}
        for key in keyset.keys:
            if isinstance(key, ECKey) and key.kid and key.get("crv") == "P-256":
                fresh[key.kid] = key
        # Replace, never merge: a key the issuer no longer publishes is not trusted.
        self._keys = {**fresh, **self._static}
        self._last_good = self._last_fetch


class JwtValidator:
    """Verify ES256 JWTs for one audience (and issuer) with a small fixed leeway."""

    def __init__(
        self,
        keys: JwksCache,
        *,
        audience: str,
        issuer: str | None,
        require_issuer: bool = True,
        clock: Clock = time.time,
        leeway_s: int = LEEWAY_S,
    ) -> None:
        if not audience:
            raise ValueError("a JwtValidator needs an audience")
        if require_issuer and not issuer:
            raise ValueError("a JwtValidator needs an issuer")
        self._keys = keys
        self._audience = audience
        self._issuer = issuer
        self._clock = clock
        self._leeway_s = leeway_s

    def verify(self, token: str, *, typ: str | None = None) -> dict[str, Any]:
        """Claims of a valid token, else :class:`JwtInvalidError`."""
        claims, header = self._decode(token)
        if typ is not None and header.get("typ", "").lower() != typ.lower():
            raise JwtInvalidError("invalid token: wrong type")
        self._check_claims(claims)
        return claims

    def _decode(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
            raise JwtInvalidError("invalid token: malformed")
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError) as exc:
            raise JwtInvalidError("invalid token: malformed") from exc
        kid = header.get("kid")
        # The algorithm is pinned by us, never taken from the token (RFC 8725 §3.1).
        if header.get("alg") != ALGORITHM or not isinstance(kid, str) or not kid:
            raise JwtInvalidError("invalid token: unsupported algorithm or missing kid")
        key = self._keys.key_for(kid)
        try:
            decoded = jwt.decode(token, key, algorithms=[ALGORITHM])
        except (JoseError, ValueError) as exc:
            raise JwtInvalidError("invalid token: bad signature") from exc
        return dict(decoded.claims), dict(decoded.header)

    def _check_claims(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or now > exp + self._leeway_s:
            raise JwtInvalidError("invalid token: expired")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and now + self._leeway_s < nbf:
            raise JwtInvalidError("invalid token: not yet valid")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or self._audience not in audiences:
            raise JwtInvalidError("invalid token: wrong audience")
        if self._issuer is not None and claims.get("iss") != self._issuer:
            raise JwtInvalidError("invalid token: wrong issuer")


def verify_jwt_svid(
    token: str,
    keys: JwksCache,
    *,
    audience: str,
    trust_domain: str,
    clock: Clock = time.time,
) -> str:
    """Validate a JWT-SVID (SPIFFE JWT-SVID spec §3) and return its SPIFFE ID."""
    sub: str = verify_jwt_svid_claims(
        token, keys, audience=audience, trust_domain=trust_domain, clock=clock
    )["sub"]
    return sub


def verify_jwt_svid_claims(
    token: str,
    keys: JwksCache,
    *,
    audience: str,
    trust_domain: str,
    clock: Clock = time.time,
) -> dict[str, Any]:
    """Validate a JWT-SVID like :func:`verify_jwt_svid`; answer all its claims."""
    if not trust_domain:
        raise ValueError("a trust domain is required")
    validator = JwtValidator(
        keys, audience=audience, issuer=None, require_issuer=False, clock=clock
    )
    claims = validator.verify(token)
    sub = claims.get("sub")
    prefix = f"spiffe://{trust_domain}/"
    if (
        not isinstance(sub, str)
        or not sub.startswith(prefix)
        or len(sub) == len(prefix)
    ):
        raise JwtInvalidError("invalid token: not an SVID of this trust domain")
    return claims


# SPIFFE bundles mark JWT authorities ``"use": "jwt-svid"`` (SPIFFE Trust Domain and
# Bundle §4.2.2), which joserfc refuses; both that and ``sig`` mean "verifies JWTs".
_SIGNING_USES = {None, "sig", "jwt-svid"}


def _signing_keys(document: Any) -> dict[str, Any]:
    """The JWKS with only ES256 signing keys, ``use`` dropped for joserfc."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set")
    # A key that names another algorithm is never used for ES256 (RFC 7517 §4.4).
    keys = [
        {k: v for k, v in jwk.items() if k != "use"}
        for jwk in document["keys"]
        if isinstance(jwk, dict)
        and jwk.get("use") in _SIGNING_USES
        and jwk.get("alg", ALGORITHM) == ALGORITHM
    ]
    return {"keys": keys}
