"""The IdP stand-in through the production client, in process (ASGI transport)."""

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

from trustloop.devstack.idp.app import Idp, build_idp, create_app
from trustloop.devstack.idp.policy import PatientFacts
from trustloop.devstack.idp.users import DemoUsers
from trustloop.devstack.jwtcheck import JwksCache
from trustloop.devstack.spire.keys import JwtAuthority
from trustloop.identity.oauth import (
    JWT_BEARER_ASSERTION,
    IdpClient,
    IssuedToken,
    OAuthError,
)
from trustloop.identity.rar import AuthorizationDetail, patient_read, roster_read
from trustloop.settings import Settings

NOW = 1_800_000_000.0
ISSUER = "http://127.0.0.1:9400"
MCP_ID = "spiffe://trustloop.local/mcp-server"
RUNTIME_ID = "spiffe://trustloop.local/agent-runtime"
VAULT = "trustloop-vault"
PASSWORDS = {"achen": "pw-achen-1", "bokafor": "pw-bokafor-1", "cwhite": "pw-cw-1"}


class FakeFacts:
    """Patients: p-mine (achen's), p-other (bokafor's), p-restricted (achen's)."""

    async def role(self, clinician_sub: str) -> str | None:
        return "physician"

    async def patient(self, clinician_sub: str, patient_id: str) -> PatientFacts | None:
        table = {
            "p-mine": (False, {"clin-achen"}),
            "p-other": (False, {"clin-bokafor"}),
            "p-restricted": (True, {"clin-achen"}),
        }
        if patient_id not in table:
            return None
        sensitive, team = table[patient_id]
        return PatientFacts(sensitive=sensitive, on_care_team=clinician_sub in team)


@pytest.fixture(scope="module")
def users() -> DemoUsers:
    return DemoUsers(PASSWORDS)


@dataclass
class World:
    settings: Settings
    clock: FakeClock
    spire: JwtAuthority
    idp: Idp
    client: IdpClient
    http: httpx.AsyncClient

    def svid(self, spiffe_id: str = MCP_ID, aud: str = ISSUER) -> str:
        return self.spire.mint(spiffe_id, [aud])

    @property
    def audit_text(self) -> str:
        return (self.settings.audit_dir / "idp.jsonl").read_text()

    def audit_events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit_text.splitlines()]


@pytest.fixture
async def world(tmp_path: Path, users: DemoUsers) -> AsyncIterator[World]:
    settings = Settings(state_dir=tmp_path, idp_url=ISSUER)
    clock = FakeClock(NOW)
    spire = JwtAuthority(settings.trust_domain, clock=clock)
    keys = JwksCache(keys=[_public_key(jwk) for jwk in json.loads(spire.jwks)["keys"]])
    idp = build_idp(
        settings, svid_keys=keys, facts=FakeFacts(), users=users, clock=clock
    )
    transport = httpx.ASGITransport(app=create_app(idp))
    async with httpx.AsyncClient(transport=transport) as http:
        yield World(settings, clock, spire, idp, IdpClient(ISSUER, http), http)


def _public_key(jwk: dict[str, Any]) -> ECKey:
    # joserfc refuses SPIFFE's ``"use": "jwt-svid"``; the key is the same without it.
    return ECKey.import_key({k: v for k, v in jwk.items() if k != "use"})


async def _sign_in(world: World, username: str = "achen") -> IssuedToken:
    return await world.client.password_grant(username, PASSWORDS[username])


async def _exchange(
    world: World,
    detail: AuthorizationDetail,
    *,
    subject_token: str | None = None,
    actor_token: str | None = None,
    audience: str = VAULT,
) -> IssuedToken:
    if subject_token is None:
        subject_token = (await _sign_in(world)).access_token
    svid = world.svid()
    return await world.client.exchange(
        subject_token=subject_token,
        actor_token=actor_token or svid,
        client_assertion=svid,
        audience=audience,
        detail=detail,
    )


async def _raw_exchange(world: World, **overrides: str) -> httpx.Response:
    """POST a hand-built token-exchange form (for what the client never sends)."""
    svid = world.svid()
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": (await _sign_in(world)).access_token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "actor_token": svid,
        "actor_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "audience": VAULT,
        "authorization_details": json.dumps([patient_read("p-mine").model_dump()]),
        "client_assertion_type": JWT_BEARER_ASSERTION,
        "client_assertion": svid,
    }
    form.update(overrides)
    return await world.http.post(f"{ISSUER}/oauth2/token", data=form)


def _claims(token: str) -> dict[str, Any]:
    from joserfc import jws

    return dict(json.loads(jws.extract_compact(token.encode()).payload))


async def test_password_grant_issues_an_rfc9068_access_token(world: World) -> None:
    issued = await _sign_in(world)
    claims = _claims(issued.access_token)

    assert set(claims) == {
        "iss", "sub", "aud", "client_id", "scope", "role",
        "auth_time", "iat", "exp", "jti", "sid",
    }  # fmt: skip
    assert claims["iss"] == ISSUER
    assert claims["sub"] == "clin-achen"
    assert claims["aud"] == [world.settings.mcp_resource]
    assert claims["client_id"] == "trustloop-cli"
    assert claims["role"] == "physician"
    assert claims["exp"] - claims["iat"] == 900
    assert issued.jti == claims["jti"]
    assert issued.expires_in == 900


async def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
    world: World,
) -> None:
    with pytest.raises(OAuthError) as wrong_password:
        await world.client.password_grant("achen", "not-it")
    with pytest.raises(OAuthError) as unknown_user:
        await world.client.password_grant("nobody", "not-it")

    assert str(wrong_password.value) == str(unknown_user.value)
    assert wrong_password.value.error == "invalid_grant"
    assert wrong_password.value.status == 400
    assert [e["event"] for e in world.audit_events()] == ["sign_in_failed"] * 2


async def test_password_grant_refuses_other_clients(world: World) -> None:
    with pytest.raises(OAuthError) as refused:
        await world.client.password_grant("achen", PASSWORDS["achen"], "someone")

    assert refused.value.error == "invalid_client"
    assert refused.value.status == 401


async def test_exchange_grants_a_care_team_patient_with_the_exact_obo_claims(
    world: World,
) -> None:
    detail = patient_read("p-mine")
    obo = await _exchange(world, detail)
    claims = _claims(obo.access_token)

    assert set(claims) == {
        "iss", "sub", "aud", "act", "client_id",
        "authorization_details", "iat", "exp", "jti",
    }  # fmt: skip
    assert claims["sub"] == "clin-achen"
    assert claims["act"] == {"sub": MCP_ID}
    assert claims["client_id"] == MCP_ID
    assert claims["aud"] == VAULT
    assert claims["authorization_details"] == [detail.wire()]
    assert claims["exp"] - claims["iat"] == 60
    assert obo.expires_in == 60
    assert obo.jti == claims["jti"]
    assert obo.issued_token_type == "urn:ietf:params:oauth:token-type:jwt"


async def test_the_obo_is_signed_by_a_key_in_the_published_jwks(world: World) -> None:
    obo = await _exchange(world, patient_read("p-mine"))
    jwks = (await world.http.get(f"{ISSUER}/oauth2/jwks")).json()

    from joserfc import jws

    header = jws.extract_compact(obo.access_token.encode()).headers()
    assert header["alg"] == "ES256"
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}
    assert all("d" not in k for k in jwks["keys"])


async def test_every_obo_jti_is_unique(world: World) -> None:
    token = (await _sign_in(world)).access_token
    jtis = {
        (await _exchange(world, patient_read("p-mine"), subject_token=token)).jti
        for _ in range(5)
    }
    assert len(jtis) == 5


async def test_exchange_grants_the_clinicians_own_roster(world: World) -> None:
    obo = await _exchange(world, roster_read("clin-achen"))
    assert _claims(obo.access_token)["authorization_details"][0]["type"] == (
        "care_team_roster"
    )


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        (patient_read("p-other"), "Patient/p-other: not on your care team"),
        (patient_read("p-unknown"), "Patient/p-unknown: not on your care team"),
        (roster_read("clin-bokafor"), "only by its own clinician"),
    ],
)
async def test_policy_refusals_are_access_denied(
    world: World, detail: AuthorizationDetail, reason: str
) -> None:
    with pytest.raises(OAuthError) as refused:
        await _exchange(world, detail)

    assert refused.value.error == "access_denied"
    assert refused.value.status == 403
    assert reason in refused.value.description


async def test_an_audience_other_than_vault_is_invalid_target(world: World) -> None:
    with pytest.raises(OAuthError) as refused:
        await _exchange(world, patient_read("p-mine"), audience="somewhere-else")
    assert refused.value.error == "invalid_target"


@pytest.mark.parametrize(
    "details",
    [
        [
            {
                "type": "patient_record",
                "actions": ["read"],
                "identifier": "Patient/p-mine",
            }
        ]
        * 2,
        [
            {
                "type": "patient_record",
                "actions": ["read", "write"],
                "identifier": "Patient/p-mine",
            }
        ],
        [
            {
                "type": "patient_record",
                "actions": ["write"],
                "identifier": "Patient/p-mine",
            }
        ],
        [
            {
                "type": "patient_record",
                "actions": ["read"],
                "identifier": "Patient/p-mine",
                "locations": ["https://elsewhere"],
            }
        ],
        [{"type": "patient_record", "actions": ["read"], "identifier": "Patient/*"}],
        [],
        {"type": "patient_record", "actions": ["read"], "identifier": "Patient/p-mine"},
    ],
    ids=["two", "widened", "write", "extra-field", "wildcard", "empty", "not-a-list"],
)
async def test_anything_but_exactly_one_strict_detail_is_invalid_authorization_details(
    world: World, details: object
) -> None:
    response = await _raw_exchange(world, authorization_details=json.dumps(details))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_authorization_details"


async def test_an_actor_token_of_another_trust_domain_is_refused(world: World) -> None:
    foreign = world.svid("spiffe://elsewhere.example/mcp-server")
    with pytest.raises(OAuthError) as refused:
        await _exchange(world, patient_read("p-mine"), actor_token=foreign)
    assert refused.value.error == "invalid_request"
    assert "actor_token" in refused.value.description


async def test_an_actor_token_for_another_audience_is_refused(world: World) -> None:
    wrong_aud = world.svid(aud=VAULT)
    with pytest.raises(OAuthError) as refused:
        await _exchange(world, patient_read("p-mine"), actor_token=wrong_aud)
    assert refused.value.error == "invalid_request"


async def test_the_actor_must_be_the_authenticated_client(world: World) -> None:
    response = await _raw_exchange(world, actor_token=world.svid(RUNTIME_ID))
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "actor_token does not name the authenticated client",
    }


async def test_only_the_mcp_server_may_exchange(world: World) -> None:
    runtime = world.svid(RUNTIME_ID)
    response = await _raw_exchange(world, actor_token=runtime, client_assertion=runtime)
    assert response.json()["error"] == "unauthorized_client"


async def test_a_bad_client_assertion_is_invalid_client(world: World) -> None:
    response = await _raw_exchange(world, client_assertion=world.svid(aud=VAULT))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("subject", ["garbage", "a.b.c", ""])
async def test_a_garbage_subject_token_is_refused(world: World, subject: str) -> None:
    response = await _raw_exchange(world, subject_token=subject)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_an_expired_subject_token_is_refused(world: World) -> None:
    token = (await _sign_in(world)).access_token
    world.clock.now += 16 * 60

    with pytest.raises(OAuthError) as refused:
        await _exchange(world, patient_read("p-mine"), subject_token=token)
    assert refused.value.description == "subject_token is invalid"


async def test_an_obo_token_is_not_accepted_as_a_subject_token(world: World) -> None:
    obo = await _exchange(world, patient_read("p-mine"))
    with pytest.raises(OAuthError) as refused:
        await _exchange(world, patient_read("p-mine"), subject_token=obo.access_token)
    assert refused.value.description == "subject_token is invalid"


async def test_a_revoked_subject_token_is_refused(world: World) -> None:
    issued = await _sign_in(world)
    world.idp.access_tokens.revoke(issued.jti or "")
    with pytest.raises(OAuthError):
        await _exchange(
            world, patient_read("p-mine"), subject_token=issued.access_token
        )


async def test_tokens_signed_before_a_key_rotation_stay_valid(world: World) -> None:
    issued = await _sign_in(world)
    world.idp.keys.rotate()

    obo = await _exchange(
        world, patient_read("p-mine"), subject_token=issued.access_token
    )
    assert obo.jti


async def test_errors_are_rfc6749_json_with_no_store(world: World) -> None:
    response = await _raw_exchange(world, audience="elsewhere")

    assert response.headers["cache-control"] == "no-store"
    assert set(response.json()) == {"error", "error_description"}


async def test_a_repeated_parameter_is_invalid_request(world: World) -> None:
    body = "grant_type=password&grant_type=password&client_id=trustloop-cli"
    response = await world.http.post(
        f"{ISSUER}/oauth2/token",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.json()["error"] == "invalid_request"


async def test_an_unknown_grant_type_is_unsupported(world: World) -> None:
    response = await world.http.post(
        f"{ISSUER}/oauth2/token", data={"grant_type": "client_credentials"}
    )
    assert response.json()["error"] == "unsupported_grant_type"


async def test_introspection_describes_an_active_access_token(world: World) -> None:
    issued = await _sign_in(world)
    found = await world.client.introspect(
        issued.access_token, client_assertion=world.svid()
    )

    assert found.active
    assert found.sub == "clin-achen"
    assert found.aud == [world.settings.mcp_resource]
    assert found.jti == issued.jti
    assert found.client_id == "trustloop-cli"


async def test_introspection_answers_exactly_inactive_for_garbage(world: World) -> None:
    response = await world.http.post(
        f"{ISSUER}/oauth2/introspect",
        data={
            "token": "garbage",
            "client_assertion_type": (
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            ),
            "client_assertion": world.svid(),
        },
    )
    assert response.status_code == 200
    assert response.json() == {"active": False}


async def test_introspection_requires_client_authentication(world: World) -> None:
    response = await world.http.post(
        f"{ISSUER}/oauth2/introspect", data={"token": "garbage"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_every_exchange_is_audited_without_any_token(world: World) -> None:
    issued = await _sign_in(world)
    svid = world.svid()
    obo = await _exchange(
        world, patient_read("p-mine"), subject_token=issued.access_token
    )
    with pytest.raises(OAuthError):
        await _exchange(
            world, patient_read("p-other"), subject_token=issued.access_token
        )

    events = world.audit_events()
    granted = next(e for e in events if e["event"] == "token_exchanged")
    denied = next(e for e in events if e["event"] == "exchange_denied")
    assert granted["jti"] == obo.jti
    assert granted["subject_jti"] == issued.jti
    assert granted["actor"] == MCP_ID
    assert granted["rule"] == "care_team"
    assert granted["granted"] == granted["requested"]
    assert denied["sub"] == "clin-achen"
    assert denied["reason"] == "Patient/p-other: not on your care team"
    for secret in (issued.access_token, obo.access_token, svid, PASSWORDS["achen"]):
        assert secret not in world.audit_text


async def test_discovery_names_the_issuer_and_the_endpoints(world: World) -> None:
    metadata = (
        await world.http.get(f"{ISSUER}/.well-known/openid-configuration")
    ).json()

    assert metadata["issuer"] == ISSUER
    assert metadata["token_endpoint"] == f"{ISSUER}/oauth2/token"
    assert metadata["introspection_endpoint"] == f"{ISSUER}/oauth2/introspect"
    assert metadata["jwks_uri"] == f"{ISSUER}/oauth2/jwks"
