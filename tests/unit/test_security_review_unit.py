"""Attacks from the security review that need no server.

Each test states a property an attacker would like to break; it failed before
the fix named in its docstring.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from trustloop.devstack.jwtcheck import JwksCache, JwtInvalidError, JwtValidator
from trustloop.identity.vault import VaultLeaseClient

NOW = 1_800_000_000.0
ISS = "http://127.0.0.1:9400"
JWKS_URL = "http://127.0.0.1:9400/oauth2/jwks"


def _key(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)


def _jwk(key: ECKey) -> dict[str, Any]:
    return {**key.as_dict(private=False), "use": "sig", "alg": "ES256"}


def _token(key: ECKey, **claims: Any) -> str:
    base: dict[str, Any] = {"iss": ISS, "aud": "vault", "exp": int(NOW) + 60}
    base.update(claims)
    return jwt.encode({"alg": "ES256", "kid": key.kid}, base, key)


def test_key_withdrawn_from_the_jwks_stops_verifying() -> None:
    """An issuer that drops a key from its JWKS (rotated out, or compromised) must
    not have it trusted until the verifier restarts. The cache used to add keys
    and never forget them, and never refetch while the ``kid`` was known. Fixed
    in ``jwtcheck.JwksCache`` (a refetch replaces the keys; known keys expire)."""
    withdrawn, current = _key("old"), _key("new")
    published = {"keys": [_jwk(withdrawn)]}
    now = [0.0]

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=published)

    cache = JwksCache(
        JWKS_URL,
        http=httpx.Client(transport=httpx.MockTransport(serve)),
        clock=lambda: now[0],
    )
    validator = JwtValidator(cache, audience="vault", issuer=ISS, clock=lambda: NOW)
    validator.verify(_token(withdrawn))

    published = {"keys": [_jwk(current)]}
    now[0] += 600
    validator.verify(_token(current))

    with pytest.raises(JwtInvalidError):
        validator.verify(_token(withdrawn))


def test_vault_client_refuses_plain_http_to_a_remote_vault() -> None:
    """The client token, SVIDs and OBO tokens must not cross a network in clear.
    Fixed in ``identity.vault.VaultLeaseClient`` (as the IdP client already did)."""
    with pytest.raises(ValueError, match="HTTPS"):
        VaultLeaseClient(
            "http://vault.example.org:8200", auth_role="mcp-server", creds_role="c"
        )


def test_withdrawn_key_with_a_known_kid_stops_verifying_once_the_keys_are_old() -> None:
    """Withdrawal must take effect without waiting for some unknown ``kid`` to
    trigger a refetch. Fixed in ``jwtcheck.JwksCache`` (``max_age_s``)."""
    withdrawn, current = _key("old"), _key("new")
    published = {"keys": [_jwk(withdrawn), _jwk(current)]}
    now = [0.0]

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=published)

    cache = JwksCache(
        JWKS_URL,
        http=httpx.Client(transport=httpx.MockTransport(serve)),
        clock=lambda: now[0],
        max_age_s=300,
    )
    validator = JwtValidator(cache, audience="vault", issuer=ISS, clock=lambda: NOW)
    validator.verify(_token(withdrawn))

    published = {"keys": [_jwk(current)]}
    now[0] += 301

    with pytest.raises(JwtInvalidError):
        validator.verify(_token(withdrawn))
    validator.verify(_token(current))
