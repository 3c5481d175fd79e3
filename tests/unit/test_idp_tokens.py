"""The IdP's signing keys and token checks (claims shapes are in test_idp_exchange)."""

from __future__ import annotations

from joserfc import jws

from trustloop.devstack.demo import CLINICIANS
from trustloop.devstack.idp.keys import SigningKeys
from trustloop.devstack.idp.tokens import AccessTokens, TokenIssuer
from trustloop.identity.rar import patient_read

ISSUER = "http://127.0.0.1:9400"
MCP = "http://127.0.0.1:8000/mcp"
NOW = 1_800_000_000.0


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


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


def test_rotation_keeps_the_previous_key_published_until_it_is_retired() -> None:
    keys = SigningKeys(keep_retired=1)
    first = keys.active_kid
    keys.rotate()
    second = keys.active_kid
    assert [k["kid"] for k in keys.jwks()["keys"]] == [second, first]

    keys.rotate()
    assert first not in {k["kid"] for k in keys.jwks()["keys"]}


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
