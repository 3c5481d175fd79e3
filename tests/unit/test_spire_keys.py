"""The SPIRE stand-in's JWT authority, with a frozen clock."""

from __future__ import annotations

import pytest
from fakeclock import FakeClock

from trustloop.devstack.jwtcheck import JwtInvalidError
from trustloop.devstack.spire.keys import JWT_SVID_TTL_S, JwtAuthority

MCP_ID = "spiffe://trustloop.local/mcp-server"


def test_minted_svid_validates_for_its_audience() -> None:
    authority = JwtAuthority("trustloop.local", clock=FakeClock(1_800_000_000))
    token = authority.mint(MCP_ID, ["trustloop-vault"])

    spiffe_id, claims = authority.validate(token, "trustloop-vault")

    assert spiffe_id == MCP_ID
    assert claims["exp"] == 1_800_000_000 + JWT_SVID_TTL_S


def test_expired_svid_is_refused() -> None:
    clock = FakeClock(1_800_000_000)
    authority = JwtAuthority("trustloop.local", clock=clock)
    token = authority.mint(MCP_ID, ["trustloop-vault"])
    clock.now += JWT_SVID_TTL_S + 60

    with pytest.raises(JwtInvalidError, match="expired"):
        authority.validate(token, "trustloop-vault")


def test_svid_of_another_trust_domain_is_refused() -> None:
    authority = JwtAuthority("trustloop.local")
    token = authority.mint("spiffe://elsewhere.example/mcp-server", ["aud"])

    with pytest.raises(JwtInvalidError):
        authority.validate(token, "aud")


def test_svid_signed_by_another_authority_is_refused() -> None:
    token = JwtAuthority("trustloop.local").mint(MCP_ID, ["aud"])

    with pytest.raises(JwtInvalidError):
        JwtAuthority("trustloop.local").validate(token, "aud")


def test_empty_audience_is_refused() -> None:
    with pytest.raises(ValueError, match="audience"):
        JwtAuthority("trustloop.local").mint(MCP_ID, [])


def test_bundle_holds_only_the_public_key() -> None:
    authority = JwtAuthority("trustloop.local")

    assert b'"d"' not in authority.jwks
    assert authority.kid.encode() in authority.jwks


def test_every_jwt_svid_has_its_own_jti() -> None:
    """The IdP refuses a replayed actor_token by jti, so each SVID needs one."""
    authority = JwtAuthority("trustloop.local")
    tokens = [authority.mint("spiffe://trustloop.local/w", ["aud"]) for _ in range(2)]
    jtis = [authority.validate(t, "aud")[1]["jti"] for t in tokens]
    assert jtis[0] != jtis[1]
