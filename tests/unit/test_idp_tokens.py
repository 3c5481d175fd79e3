"""The IdP's signing keys and token checks (claims shapes are in test_idp_exchange)."""

from __future__ import annotations

from fakeclock import FakeClock
from joserfc import jws

from trustloop.devstack.demo import CLINICIANS
from trustloop.devstack.idp.keys import LONGEST_TOKEN_TTL_S, SigningKeys
from trustloop.devstack.idp.tokens import (
    ACCESS_TOKEN_TTL_S,
    OBO_TTL_S,
    AccessTokens,
    TokenIssuer,
)
from trustloop.devstack.jwtcheck import LEEWAY_S
from trustloop.identity.rar import patient_read

ISSUER = "http://127.0.0.1:9400"
MCP = "http://127.0.0.1:8000/mcp"
NOW = 1_800_000_000.0


def _pair(
    clock: FakeClock, keys: SigningKeys | None = None
) -> tuple[SigningKeys, TokenIssuer, AccessTokens]:
    keys = keys or SigningKeys()
    issuer = TokenIssuer(keys, issuer=ISSUER, mcp_resource=MCP, clock=clock)
    checker = AccessTokens(keys, issuer=ISSUER, mcp_resource=MCP, clock=clock)
    return keys, issuer, checker


def test_access_tokens_carry_the_rfc9068_header() -> None:
    keys, issuer, _ = _pair(FakeClock(NOW))
    issued = issuer.access_token(
        CLINICIANS[0], client_id="trustloop-cli", scope="openid"
    )

    header = jws.extract_compact(issued.token.encode()).headers()
    assert header == {"alg": "ES256", "kid": keys.active_kid, "typ": "at+jwt"}


def test_an_active_access_token_is_recognised() -> None:
    _, issuer, checker = _pair(FakeClock(NOW))
    issued = issuer.access_token(
        CLINICIANS[0], client_id="trustloop-cli", scope="openid"
    )

    assert checker.active_claims(issued.token) == issued.claims


def test_an_expired_access_token_is_not_active() -> None:
    clock = FakeClock(NOW)
    _, issuer, checker = _pair(clock)
    issued = issuer.access_token(
        CLINICIANS[0], client_id="trustloop-cli", scope="openid"
    )
    clock.now += 15 * 60 + 10

    assert checker.active_claims(issued.token) is None


def test_an_obo_token_is_not_an_access_token() -> None:
    _, issuer, checker = _pair(FakeClock(NOW))
    obo = issuer.obo_token(
        sub="clin-achen",
        actor="spiffe://x/y",
        audience=MCP,
        details=[patient_read("p")],
    )
    assert checker.active_claims(obo.token) is None


def test_a_token_of_another_idp_is_not_active() -> None:
    clock = FakeClock(NOW)
    _, other_issuer, _ = _pair(clock)
    _, _, checker = _pair(clock)
    issued = other_issuer.access_token(CLINICIANS[0], client_id="c", scope="openid")

    assert checker.active_claims(issued.token) is None


def test_the_next_key_is_published_before_it_signs() -> None:
    """A validator that fetched the JWKS before a rotation knows the new key."""
    keys = SigningKeys()
    published_before = {k["kid"] for k in keys.jwks()["keys"]}

    new_kid = keys.rotate()

    assert new_kid == keys.active_kid
    assert new_kid in published_before


def test_a_rotated_out_key_is_published_until_its_tokens_expired() -> None:
    clock = FakeClock(NOW)
    keys, issuer, checker = _pair(clock, SigningKeys(clock=clock))
    old_kid = keys.active_kid
    issued = issuer.access_token(
        CLINICIANS[0], client_id="trustloop-cli", scope="openid"
    )
    keys.rotate()

    clock.now += ACCESS_TOKEN_TTL_S
    assert old_kid in {k["kid"] for k in keys.jwks()["keys"]}
    assert checker.active_claims(issued.token) == issued.claims

    clock.now += LEEWAY_S + 1
    assert old_kid not in {k["kid"] for k in keys.jwks()["keys"]}
    assert checker.active_claims(issued.token) is None


def test_new_tokens_are_signed_with_the_new_key() -> None:
    clock = FakeClock(NOW)
    keys, issuer, checker = _pair(clock, SigningKeys(clock=clock))
    new_kid = keys.rotate()

    issued = issuer.access_token(
        CLINICIANS[0], client_id="trustloop-cli", scope="openid"
    )

    assert jws.extract_compact(issued.token.encode()).headers()["kid"] == new_kid
    assert checker.active_claims(issued.token) == issued.claims


def test_retired_keys_outlive_the_longest_token() -> None:
    assert LONGEST_TOKEN_TTL_S >= ACCESS_TOKEN_TTL_S
    assert LONGEST_TOKEN_TTL_S >= OBO_TTL_S


def test_access_tokens_name_their_sign_in_session() -> None:
    _, issuer, _ = _pair(FakeClock(NOW))
    first = issuer.access_token(CLINICIANS[0], client_id="c", scope="openid")
    same = issuer.access_token(
        CLINICIANS[0], client_id="c", scope="openid", sid=first.claims["sid"]
    )
    other = issuer.access_token(CLINICIANS[0], client_id="c", scope="openid")

    assert same.claims["sid"] == first.claims["sid"]
    assert other.claims["sid"] != first.claims["sid"]


def test_a_revoked_access_token_is_not_active() -> None:
    _, issuer, checker = _pair(FakeClock(NOW))
    issued = issuer.access_token(CLINICIANS[0], client_id="c", scope="openid")
    kept = issuer.access_token(CLINICIANS[0], client_id="c", scope="openid")

    checker.revoke(issued.jti, exp=issued.claims["exp"])

    assert checker.active_claims(issued.token) is None
    assert checker.active_claims(kept.token) == kept.claims


def test_ending_a_session_ends_all_its_tokens_and_no_others() -> None:
    _, issuer, checker = _pair(FakeClock(NOW))
    first = issuer.access_token(CLINICIANS[0], client_id="c", scope="openid")
    sid = first.claims["sid"]
    second = issuer.access_token(CLINICIANS[0], client_id="c", scope="o", sid=sid)
    other = issuer.access_token(CLINICIANS[0], client_id="c", scope="openid")

    checker.end_session(sid)

    assert checker.active_claims(first.token) is None
    assert checker.active_claims(second.token) is None
    assert checker.active_claims(other.token) == other.claims


def test_revocations_are_forgotten_once_the_token_expired() -> None:
    clock = FakeClock(NOW)
    _, issuer, checker = _pair(clock)
    issued = issuer.access_token(CLINICIANS[0], client_id="c", scope="openid")
    checker.revoke(issued.jti, exp=issued.claims["exp"])
    checker.end_session(issued.claims["sid"])

    clock.now += ACCESS_TOKEN_TTL_S + LEEWAY_S + 1
    checker.revoke("another-jti")

    assert checker._revoked.keys() == {"another-jti"}
    assert not checker._ended_sessions


def test_the_jwks_pins_es256_and_holds_no_private_part() -> None:
    for jwk in SigningKeys().jwks()["keys"]:
        assert jwk["alg"] == "ES256"
        assert jwk["use"] == "sig"
        assert "d" not in jwk


def test_issued_tokens_never_show_in_a_repr() -> None:
    _, issuer, _ = _pair(FakeClock(NOW))
    issued = issuer.access_token(
        CLINICIANS[0], client_id="trustloop-cli", scope="openid"
    )
    assert issued.token not in repr(issued)
