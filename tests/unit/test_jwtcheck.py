"""The stand-ins' JWT checks: pinned ES256, exact audience, issuer, expiry, kid."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from trustloop.devstack.jwtcheck import (
    LEEWAY_S,
    JwksCache,
    JwtInvalidError,
    JwtValidator,
    verify_jwt_svid,
)

NOW = 1_800_000_000.0
ISS = "http://127.0.0.1:9400"


def _key(kid: str = "k1") -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)


def _public(key: ECKey) -> ECKey:
    return ECKey.import_key(key.as_dict(private=False))


def _token(key: ECKey, **claims: Any) -> str:
    base: dict[str, Any] = {
        "iss": ISS,
        "aud": ["vault"],
        "exp": int(NOW) + 60,
        "sub": "u",
    }
    base.update(claims)
    return jwt.encode({"alg": "ES256", "kid": key.kid}, base, key)


def _validator(key: ECKey, **kw: Any) -> JwtValidator:
    return JwtValidator(
        JwksCache(keys=[_public(key)]),
        audience="vault",
        issuer=ISS,
        clock=lambda: NOW,
        **kw,
    )


def test_a_valid_token_gives_its_claims() -> None:
    key = _key()
    assert _validator(key).verify(_token(key))["sub"] == "u"


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": ["other"]},
        {"aud": "vaul"},
        {"aud": ["vault-x"]},
        {"iss": "http://evil"},
        {"exp": int(NOW) - 6},
        {"nbf": int(NOW) + 6},
    ],
)
def test_wrong_claims_are_refused(claims: dict[str, Any]) -> None:
    key = _key()
    with pytest.raises(JwtInvalidError):
        _validator(key).verify(_token(key, **claims))


def test_audience_as_a_plain_string_matches_exactly() -> None:
    key = _key()
    assert _validator(key).verify(_token(key, aud="vault"))["aud"] == "vault"


def test_expiry_within_the_leeway_is_accepted() -> None:
    key = _key()
    assert _validator(key).verify(_token(key, exp=int(NOW) - 4))


def test_a_token_signed_by_another_key_with_the_same_kid_is_refused() -> None:
    key, impostor = _key("k1"), _key("k1")
    with pytest.raises(JwtInvalidError, match="bad signature"):
        _validator(key).verify(_token(impostor))


def test_alg_none_is_refused() -> None:
    key = _key()
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": "k1"}).encode())
    body = base64.urlsafe_b64encode(json.dumps({"sub": "u", "aud": "vault"}).encode())
    forged = f"{header.decode().rstrip('=')}.{body.decode().rstrip('=')}."
    with pytest.raises(JwtInvalidError):
        _validator(key).verify(forged)


def test_hmac_signed_with_the_public_key_is_refused() -> None:
    key = _key()
    secret = OctKey.import_key(json.dumps(key.as_dict(private=False)).encode())
    forged = jwt.encode(
        {"alg": "HS256", "kid": "k1"},
        {"iss": ISS, "aud": "vault", "exp": int(NOW) + 60},
        secret,
        algorithms=["HS256"],
    )
    with pytest.raises(JwtInvalidError, match="unsupported algorithm"):
        _validator(key).verify(forged)


def test_an_unknown_kid_is_refused_without_a_jwks_url() -> None:
    with pytest.raises(JwtInvalidError, match="unknown key"):
        _validator(_key("k1")).verify(_token(_key("k2")))


def test_validators_refuse_to_start_without_audience_or_issuer() -> None:
    cache = JwksCache(keys=[_public(_key())])
    with pytest.raises(ValueError, match="audience"):
        JwtValidator(cache, audience="", issuer=ISS)
    with pytest.raises(ValueError, match="issuer"):
        JwtValidator(cache, audience="vault", issuer=None)


def test_jwt_svid_must_belong_to_the_trust_domain() -> None:
    key = _key()
    cache = JwksCache(keys=[_public(key)])
    good = _token(key, sub="spiffe://trustloop.local/mcp-server")
    foreign = _token(key, sub="spiffe://evil.example/mcp-server")
    bare = _token(key, sub="spiffe://trustloop.local/")
    kw: dict[str, Any] = {"audience": "vault", "trust_domain": "trustloop.local"}
    assert verify_jwt_svid(good, cache, clock=lambda: NOW, **kw).endswith("/mcp-server")
    for token in (foreign, bare):
        with pytest.raises(JwtInvalidError):
            verify_jwt_svid(token, cache, clock=lambda: NOW, **kw)


def test_unknown_kid_refetches_once_and_is_rate_limited() -> None:
    import httpx

    old, new = _key("old"), _key("new")
    served = {"keys": [_public(old).as_dict()]}
    fetches: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        fetches.append(1)
        return httpx.Response(200, json=served)

    clock = [0.0]
    cache = JwksCache(
        "http://jwks.test/keys",
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        clock=lambda: clock[0],
    )
    validator = JwtValidator(cache, audience="vault", issuer=ISS, clock=lambda: NOW)
    assert validator.verify(_token(old))
    served = {"keys": [_public(old).as_dict(), _public(new).as_dict()]}
    with pytest.raises(JwtInvalidError):
        validator.verify(_token(_key("stranger")))  # refetch inside the window: none
    assert len(fetches) == 1
    clock[0] = 10.0
    assert validator.verify(_token(new))  # rotated key found by one refetch
    assert len(fetches) == 2


def test_last_good_keys_survive_a_jwks_outage() -> None:
    import httpx

    key = _key("k1")
    up = [True]

    def handler(request: httpx.Request) -> httpx.Response:
        if up[0]:
            return httpx.Response(200, json={"keys": [_public(key).as_dict()]})
        return httpx.Response(503)

    clock = [0.0]
    cache = JwksCache(
        "http://jwks.test/keys",
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        clock=lambda: clock[0],
    )
    validator = JwtValidator(cache, audience="vault", issuer=ISS, clock=lambda: NOW)
    assert validator.verify(_token(key))
    up[0] = False
    clock[0] = 100.0
    with pytest.raises(JwtInvalidError):
        validator.verify(_token(_key("k2")))  # refetch fails: unknown kid refused
    assert validator.verify(_token(key))  # but the known key still verifies


def _served_cache(
    document: dict[str, Any], clock: list[float], up: list[bool] | None = None
) -> JwksCache:
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        if up is not None and not up[0]:
            return httpx.Response(503)
        return httpx.Response(200, json=document)

    return JwksCache(
        "http://jwks.test/keys",
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        clock=lambda: clock[0],
    )


def test_a_jwk_naming_another_algorithm_never_verifies() -> None:
    """The algorithm is pinned per key: a JWK with ``alg`` ES384 is not an ES256 key."""
    key = _key("k1")
    jwk = {**_public(key).as_dict(), "alg": "ES384"}
    cache = _served_cache({"keys": [jwk]}, [0.0])
    validator = JwtValidator(cache, audience="vault", issuer=ISS, clock=lambda: NOW)

    with pytest.raises(JwtInvalidError, match="unknown key"):
        validator.verify(_token(key))


def test_a_p384_key_is_never_used_for_es256() -> None:
    p384 = ECKey.generate_key("P-384", parameters={"kid": "k384"}, private=True)
    cache = _served_cache({"keys": [_public(p384).as_dict()]}, [0.0])
    validator = JwtValidator(cache, audience="vault", issuer=ISS, clock=lambda: NOW)
    forged = _token(_key("k384"))

    with pytest.raises(JwtInvalidError):
        validator.verify(forged)


def test_stale_keys_are_kept_when_the_jwks_endpoint_is_down() -> None:
    """Past ``max_age_s`` the cache tries to refresh; an outage keeps the last keys."""
    key = _key("k1")
    clock, up = [0.0], [True]
    cache = _served_cache({"keys": [_public(key).as_dict()]}, clock, up)
    validator = JwtValidator(cache, audience="vault", issuer=ISS, clock=lambda: NOW)
    assert validator.verify(_token(key))

    up[0] = False
    clock[0] = 10_000.0

    assert validator.verify(_token(key))


def test_the_leeway_is_fixed_and_small() -> None:
    key = _key()
    validator = _validator(key)
    assert validator.verify(_token(key, exp=int(NOW) - LEEWAY_S))
    assert validator.verify(_token(key, nbf=int(NOW) + LEEWAY_S))
    with pytest.raises(JwtInvalidError):
        validator.verify(_token(key, exp=int(NOW) - LEEWAY_S - 1))
    assert LEEWAY_S <= 60
