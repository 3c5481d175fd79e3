"""Revocation (RFC 7009), session logout and key rotation at the IdP, in process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakeclock import FakeClock
from joserfc.jwk import ECKey

from trustloop.devstack.demo import by_username
from trustloop.devstack.idp.admin import create_admin_app
from trustloop.devstack.idp.app import Idp, build_idp, create_app
from trustloop.devstack.idp.directory import Directory, directory_file
from trustloop.devstack.idp.policy import PatientFacts
from trustloop.devstack.idp.users import DemoUsers
from trustloop.devstack.jwtcheck import JwksCache
from trustloop.devstack.spire.keys import JwtAuthority
from trustloop.identity.oauth import (
    CLI_CLIENT_ID,
    JWT_BEARER_ASSERTION,
    IdpClient,
    IssuedToken,
    OAuthError,
)
from trustloop.settings import Settings

NOW = 1_800_000_000.0
ISSUER = "http://127.0.0.1:9400"
MCP_ID = "spiffe://trustloop.local/mcp-server"
PASSWORDS = {"achen": "pw-achen-1"}


class NoFacts:
    """No policy facts: revocation never asks the policy."""

    async def role(self, clinician_sub: str) -> str | None:
        return None

    async def patient(self, clinician_sub: str, patient_id: str) -> PatientFacts | None:
        return None


@dataclass
class World:
    settings: Settings
    clock: FakeClock
    spire: JwtAuthority
    idp: Idp
    client: IdpClient
    http: httpx.AsyncClient

    def svid(self, spiffe_id: str = MCP_ID) -> str:
        return self.spire.mint(spiffe_id, [ISSUER])

    async def sign_in(self) -> IssuedToken:
        return await self.client.password_grant("achen", PASSWORDS["achen"])

    async def introspect(self, token: str) -> dict[str, Any]:
        form = {
            "token": token,
            "client_assertion_type": JWT_BEARER_ASSERTION,
            "client_assertion": self.svid(),
        }
        response = await self.http.post(f"{ISSUER}/oauth2/introspect", data=form)
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    def audit_events(self) -> list[dict[str, Any]]:
        text = (self.settings.audit_dir / "idp.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()]


def _public_key(jwk: dict[str, Any]) -> ECKey:
    return ECKey.import_key({k: v for k, v in jwk.items() if k != "use"})


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = Settings(state_dir=tmp_path, idp_url=ISSUER)
    clock = FakeClock(NOW)
    spire = JwtAuthority(settings.trust_domain, clock=clock)
    keys = JwksCache(keys=[_public_key(jwk) for jwk in json.loads(spire.jwks)["keys"]])
    idp = build_idp(
        settings,
        svid_keys=keys,
        facts=NoFacts(),
        users=DemoUsers(PASSWORDS),
        clock=clock,
    )
    transport = httpx.ASGITransport(app=create_app(idp))
    async with httpx.AsyncClient(transport=transport) as http:
        yield World(settings, clock, spire, idp, IdpClient(ISSUER, http), http)


async def test_a_revoked_token_introspects_exactly_inactive(world: World) -> None:
    issued = await world.sign_in()
    assert (await world.introspect(issued.access_token))["active"] is True

    await world.client.revoke(issued.access_token)

    assert await world.introspect(issued.access_token) == {"active": False}


async def test_an_expired_or_unknown_token_introspects_exactly_inactive(
    world: World,
) -> None:
    issued = await world.sign_in()
    world.clock.now += 15 * 60 + 10

    assert await world.introspect(issued.access_token) == {"active": False}
    assert await world.introspect("not.a.token") == {"active": False}


async def test_revoking_an_unknown_or_invalid_token_answers_200(world: World) -> None:
    """RFC 7009 §2.2: an invalid token is no error for the client."""
    for token in ("garbage", "a.b.c"):
        response = await world.http.post(
            f"{ISSUER}/oauth2/revoke", data={"token": token, "client_id": CLI_CLIENT_ID}
        )
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"


async def test_revoking_twice_answers_200_both_times(world: World) -> None:
    issued = await world.sign_in()
    await world.client.revoke(issued.access_token)
    await world.client.revoke(issued.access_token)


async def test_revoking_a_token_of_another_client_is_refused(world: World) -> None:
    issued = await world.sign_in()

    with pytest.raises(OAuthError) as refused:
        await world.client.revoke(issued.access_token, client_assertion=world.svid())

    assert refused.value.error == "unauthorized_client"
    assert (await world.introspect(issued.access_token))["active"] is True


async def test_a_bad_client_assertion_is_invalid_client(world: World) -> None:
    issued = await world.sign_in()

    with pytest.raises(OAuthError) as refused:
        await world.client.revoke(issued.access_token, client_assertion="x.y.z")

    assert (refused.value.error, refused.value.status) == ("invalid_client", 401)


async def test_an_unknown_public_client_is_refused(world: World) -> None:
    issued = await world.sign_in()

    with pytest.raises(OAuthError) as refused:
        await world.client.revoke(issued.access_token, client_id="someone-else")

    assert refused.value.error == "invalid_client"


async def test_revoking_one_token_leaves_other_sign_ins_active(world: World) -> None:
    revoked, kept = await world.sign_in(), await world.sign_in()

    await world.client.revoke(revoked.access_token)

    assert (await world.introspect(kept.access_token))["active"] is True


async def test_logout_ends_every_token_of_the_session(world: World) -> None:
    first = await world.sign_in()
    claims = world.idp.access_tokens.active_claims(first.access_token)
    assert claims is not None
    achen = by_username("achen")
    assert achen is not None
    # A second token of the same sign-in (what a refresh would issue).
    same_session = world.idp.issuer.access_token(
        achen, client_id=CLI_CLIENT_ID, scope="openid", sid=claims["sid"]
    )
    other = await world.sign_in()

    response = await world.http.post(
        f"{ISSUER}/oauth2/logout",
        data={"token": first.access_token, "client_id": CLI_CLIENT_ID},
    )

    assert response.status_code == 200
    assert await world.introspect(first.access_token) == {"active": False}
    assert await world.introspect(same_session.token) == {"active": False}
    assert (await world.introspect(other.access_token))["active"] is True


async def test_revocation_and_logout_are_audited_by_jti_and_sid(world: World) -> None:
    revoked, logged_out = await world.sign_in(), await world.sign_in()
    await world.client.revoke(revoked.access_token)
    await world.http.post(
        f"{ISSUER}/oauth2/logout",
        data={"token": logged_out.access_token, "client_id": CLI_CLIENT_ID},
    )

    events = {e["event"]: e for e in world.audit_events()}

    assert events["token_revoked"]["jti"] == revoked.jti
    assert events["session_logged_out"]["jti"] == logged_out.jti
    assert events["session_logged_out"]["sid"]
    text = (world.settings.audit_dir / "idp.jsonl").read_text()
    assert revoked.access_token not in text
    assert logged_out.access_token not in text


async def _rotate_over_the_admin_api(world: World) -> str:
    directory = Directory(directory_file(world.settings.state_dir))
    admin = create_admin_app(directory, world.idp.keys)
    transport = httpx.ASGITransport(app=admin)
    async with httpx.AsyncClient(transport=transport) as http:
        response = await http.post("http://idp-admin/admin/v1/signing-keys/rotate")
    assert response.status_code == 200
    return str(response.json()["kid"])


async def test_a_token_signed_before_a_rotation_stays_active(world: World) -> None:
    issued = await world.sign_in()

    new_kid = await _rotate_over_the_admin_api(world)

    assert new_kid == world.idp.keys.active_kid
    assert (await world.introspect(issued.access_token))["active"] is True
    fresh = await world.sign_in()
    assert (await world.introspect(fresh.access_token))["active"] is True


async def test_discovery_advertises_the_revocation_endpoint(world: World) -> None:
    metadata = (
        await world.http.get(f"{ISSUER}/.well-known/openid-configuration")
    ).json()

    assert metadata["revocation_endpoint"] == f"{ISSUER}/oauth2/revoke"


@pytest.mark.parametrize(
    "headers",
    [{}, {"origin": "https://attacker.example"}],
    ids=["no-credential", "cross-site"],
)
async def test_nobody_rotates_the_keys_over_tcp(
    world: World, headers: dict[str, str]
) -> None:
    """17 rotations retired the key of every live token: everyone signed out."""
    issued = await world.sign_in()
    kid = world.idp.keys.active_kid

    for _ in range(17):
        for path in ("/dev/rotate-keys", "/admin/v1/signing-keys/rotate"):
            answer = await world.http.post(f"{ISSUER}{path}", headers=headers)
            assert answer.status_code == 404

    assert world.idp.keys.active_kid == kid
    assert (await world.introspect(issued.access_token))["active"] is True
