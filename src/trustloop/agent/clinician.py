"""Who is asking: the clinician's token, checked as AgentCore's JWT authorizer does.

The runtime never consumes the clinician's token for access (the MCP server
introspects it on every tool call); it checks it only to know whose conversation
memory a request may see (:mod:`trustloop.agent.sessions`). The check is the local
counterpart of AgentCore's ``customJWTAuthorizer``: the signature against the IdP's
JWKS (found through its discovery document, fetched with httpx and cached), ES256
pinned per key (never taken from the token header, RFC 8725 §3.1), ``iss`` equal to
the IdP's issuer, ``exp`` (and ``nbf``) with a 5 s leeway, ``aud`` containing the MCP
server's resource identifier (RFC 9068 §4), and a ``sub``.

The JWKS is refetched once on an unknown ``kid`` (at most every 5 s) and when it is
300 s old; the last good keys are kept while the IdP is unreachable. Any failure is
the same answer, ``None``: no identity, so no memory. The token is never stored or
logged; only the issuer and ``sub`` it proves are returned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

ALGORITHM = "ES256"
LEEWAY_S = 5
MAX_TOKEN_CHARS = 8192
Clock = Callable[[], float]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ClinicianId:
    """The clinician a valid access token names: its issuer and ``sub``."""

    issuer: str
    sub: str


class ClinicianVerifier:
    """Checks access tokens of one issuer for one audience; fails closed."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        min_refresh_s: float = 5.0,
        max_age_s: float = 300.0,
        timeout_s: float = 3.0,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not issuer or not audience:
            raise ValueError("a ClinicianVerifier needs an issuer and an audience")
        self._issuer = issuer.rstrip("/")
        self._audience = audience
        self._min_refresh_s = min_refresh_s
        self._max_age_s = max_age_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._monotonic = monotonic
        self._transport = transport
        self._keys: dict[str, ECKey] = {}
        self._last_fetch = float("-inf")
        self._last_good = float("-inf")
        self._lock = asyncio.Lock()

    async def identify(self, token: str) -> ClinicianId | None:
        """The clinician of a valid token, else ``None`` (never raises)."""
        try:
            kid = _kid(token)
            key = await self._key_for(kid)
            if key is None:
                return None
            claims = jwt.decode(token, key, algorithms=[ALGORITHM]).claims
        except (JoseError, ValueError, TypeError, KeyError):
            return None  # one verdict for every failure: no identity
        return self._check(claims)

    def _check(self, claims: dict[str, Any]) -> ClinicianId | None:
        now = self._clock()
        exp, nbf, sub = claims.get("exp"), claims.get("nbf"), claims.get("sub")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        valid = (
            isinstance(exp, int | float)
            and now <= exp + LEEWAY_S
            and not (isinstance(nbf, int | float) and now + LEEWAY_S < nbf)
            and claims.get("iss") == self._issuer
            and isinstance(audiences, list)
            and self._audience in audiences
            and isinstance(sub, str)
            and bool(sub)
        )
        return ClinicianId(self._issuer, str(sub)) if valid else None

    async def _key_for(self, kid: str) -> ECKey | None:
        async with self._lock:
            key = self._keys.get(kid)
            stale = self._monotonic() - self._last_good >= self._max_age_s
            may_fetch = self._monotonic() - self._last_fetch >= self._min_refresh_s
            if (key is None or stale) and may_fetch:
                await self._refresh()
                key = self._keys.get(kid)
        return key

    async def _refresh(self) -> None:
        self._last_fetch = self._monotonic()
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout_s,
                follow_redirects=False,
                trust_env=False,
                transport=self._transport,
            ) as http:
                discovery = await _get_json(
                    http, f"{self._issuer}/.well-known/openid-configuration"
                )
                jwks_uri = discovery.get("jwks_uri")
                if not isinstance(jwks_uri, str):
                    raise ValueError("discovery names no jwks_uri")
                document = await _get_json(http, jwks_uri)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("jwks_fetch_failed", error_type=type(exc).__name__)
            return  # keep the last good keys
        # Replace, never merge: a key the IdP no longer publishes is not trusted.
        self._keys = _es256_keys(document)
        self._last_good = self._last_fetch


async def _get_json(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await http.get(url)
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    return body


def _kid(token: str) -> str:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise ValueError("malformed token")
    if token.count(".") != 2:
        raise ValueError("malformed token")
    header = jws.extract_compact(token.encode()).headers()
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(kid, str) or not kid:
        raise ValueError("unsupported algorithm or no kid")
    return kid


def _es256_keys(document: dict[str, Any]) -> dict[str, ECKey]:
    """P-256 signing keys by ``kid``; a key that names another ``alg`` is ignored."""
    keys: dict[str, ECKey] = {}
    entries = document.get("keys")
    for jwk in entries if isinstance(entries, list) else []:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", ALGORITHM) != ALGORITHM:
            continue
        public = {k: jwk[k] for k in ("kty", "crv", "x", "y", "kid") if k in jwk}
        try:
            keys[jwk["kid"]] = ECKey.import_key(public)
        except (JoseError, ValueError):
            continue
    return keys
