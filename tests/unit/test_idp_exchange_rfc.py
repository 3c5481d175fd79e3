"""Token exchange against the RFC examples, ``may_act`` and single-use actor tokens.

Known-answer vectors: the request of RFC 8693 §2.3 and the ``authorization_details``
examples of RFC 9396 §2, and how this IdP answers them.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from test_idp_exchange import (
    ISSUER,
    MCP_ID,
    NOW,
    RUNTIME_ID,
    World,
    _raw_exchange,
    _sign_in,
    users,
    world,
)

from trustloop.devstack.idp.tokens import ACCESS_TOKEN_TYP
from trustloop.identity.oauth import JWT_BEARER_ASSERTION

__all__ = ["users", "world"]  # fixtures, used by name

# RFC 8693 §2.3, the example request verbatim (body, and its HTTP Basic credential).
RFC8693_BODY = (
    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
    "&resource=https%3A%2F%2Fbackend.example.com%2Fapi"
    "&subject_token=accVkjcJyb4BWCxGsndESCJQbdFMogUC5PbRDqceLTC"
    "&subject_token_type="
    "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
)
RFC8693_AUTHORIZATION = "Basic cnMwODpsb25nLXNlY3VyZS1yYW5kb20tc2VjcmV0"

# RFC 9396 §2: the payment initiation example, and one asking two types at once.
RFC9396_PAYMENT: list[dict[str, Any]] = [
    {
        "type": "payment_initiation",
        "actions": ["initiate", "status", "cancel"],
        "locations": ["https://example.com/payments"],
        "instructedAmount": {"currency": "EUR", "amount": "123.50"},
        "creditorName": "Merchant A",
        "creditorAccount": {"iban": "DE02100100109307118603"},
        "remittanceInformationUnstructured": "Ref Number Merchant",
    }
]
RFC9396_TWO_TYPES: list[dict[str, Any]] = [
    {
        "type": "account_information",
        "actions": ["list_accounts", "read_balances", "read_transactions"],
        "locations": ["https://example.com/accounts"],
    },
    RFC9396_PAYMENT[0],
]
MINE = {"type": "patient_record", "actions": ["read"], "identifier": "Patient/p-mine"}


async def test_the_rfc8693_example_request_is_refused_at_client_authentication(
    world: World,
) -> None:
    """We accept no client secret: HTTP Basic is not a JWT-SVID assertion."""
    response = await world.http.post(
        f"{ISSUER}/oauth2/token",
        content=RFC8693_BODY,
        headers={
            "Authorization": RFC8693_AUTHORIZATION,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "a JWT-SVID client assertion is required",
    }


async def test_the_rfc8693_example_shape_with_our_client_names_the_failed_check(
    world: World,
) -> None:
    """Same request from our MCP server: each missing piece is named in turn."""
    form = dict(parse_qsl(RFC8693_BODY))
    svid = world.svid()
    form |= {"client_assertion_type": JWT_BEARER_ASSERTION, "client_assertion": svid}
    first = await world.http.post(f"{ISSUER}/oauth2/token", data=form)

    form |= {
        "subject_token": (await _sign_in(world)).access_token,
        "actor_token": world.svid(),
        "actor_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "client_assertion": world.svid(),
    }
    second = await world.http.post(f"{ISSUER}/oauth2/token", data=form)

    assert first.json() == {
        "error": "invalid_request",
        "error_description": (
            "actor_token_type must be urn:ietf:params:oauth:token-type:jwt"
        ),
    }
    assert second.json() == {
        "error": "invalid_target",
        "error_description": "resource is not supported",
    }


@pytest.mark.parametrize(
    ("details", "description"),
    [
        (RFC9396_PAYMENT, "authorization detail type is not registered"),
        (RFC9396_TWO_TYPES, "exactly one authorization detail is required"),
        ({**MINE}, "authorization_details must be a JSON array"),
        ([MINE, MINE], "exactly one authorization detail is required"),
        ([{**MINE, "locations": ["https://x"]}], "authorization detail has unknown fields"),
        (["patient_record"], "an authorization detail must be a JSON object"),
        ([{**MINE, "actions": ["delete"]}], "authorization_details is malformed"),
    ],
    ids=["rfc9396-payment", "rfc9396-two-types", "object", "two", "unknown-field",
         "string", "unknown-action"],
)  # fmt: skip
async def test_authorization_details_violations_say_which_rule_failed(
    world: World, details: object, description: str
) -> None:
    response = await _raw_exchange(world, authorization_details=json.dumps(details))

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_authorization_details",
        "error_description": description,
    }


async def test_authorization_details_that_are_not_json_are_refused(
    world: World,
) -> None:
    response = await _raw_exchange(world, authorization_details="[{")
    assert response.json()["error_description"] == (
        "authorization_details is not valid JSON"
    )


async def test_a_registered_write_action_asks_for_the_clinicians_consent(
    world: World,
) -> None:
    details = [{**MINE, "actions": ["write_note"], "change_sha256": "ab" * 32}]
    response = await _raw_exchange(world, authorization_details=json.dumps(details))

    assert response.status_code == 200
    assert response.json()["scope"] == "mfa_challenge"
    assert "issued_token_type" not in response.json()


def _subject_token(world: World, **extra: Any) -> str:
    """An access token of ours with extra claims (the password grant adds none)."""
    claims = {
        "iss": ISSUER,
        "sub": "clin-achen",
        "aud": [world.settings.mcp_resource],
        "client_id": "trustloop-cli",
        "scope": "openid",
        "role": "physician",
        "auth_time": int(NOW),
        "iat": int(NOW),
        "exp": int(NOW) + 600,
        "jti": "subject-jti-1",
        **extra,
    }
    return world.idp.keys.sign(claims, typ=ACCESS_TOKEN_TYP)


async def test_may_act_naming_the_actor_is_granted(world: World) -> None:
    token = _subject_token(world, may_act={"sub": MCP_ID})
    response = await _raw_exchange(world, subject_token=token)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "may_act", [{"sub": RUNTIME_ID}, {"iss": ISSUER}, "spiffe://x", []]
)
async def test_may_act_naming_another_actor_is_refused(
    world: World, may_act: object
) -> None:
    """RFC 8693 §4.4: the subject says who may act for it; nobody else may."""
    token = _subject_token(world, may_act=may_act)
    response = await _raw_exchange(world, subject_token=token)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "the subject_token's may_act does not name the actor",
    }


async def test_a_replayed_actor_token_is_invalid_grant(world: World) -> None:
    actor = world.svid()
    first = await _raw_exchange(world, actor_token=actor)
    replayed = await _raw_exchange(world, actor_token=actor)

    assert first.status_code == 200
    assert replayed.status_code == 400
    assert replayed.json() == {
        "error": "invalid_grant",
        "error_description": "actor_token was already used",
    }


async def test_an_actor_token_is_forgotten_only_after_it_expires(
    world: World,
) -> None:
    actor = world.svid()
    await _raw_exchange(world, actor_token=actor)
    world.clock.now += 200  # still valid (5 minutes), still remembered
    replayed = await _raw_exchange(world, actor_token=actor)
    assert replayed.json()["error"] == "invalid_grant"


async def test_an_actor_token_without_jti_is_refused(world: World) -> None:
    from joserfc import jwt

    claims = {"sub": MCP_ID, "aud": [ISSUER], "iat": int(NOW), "exp": int(NOW) + 300}
    header = {"alg": "ES256", "kid": world.spire.kid, "typ": "JWT"}
    actor = jwt.encode(header, claims, world.spire._key, algorithms=["ES256"])
    response = await _raw_exchange(world, actor_token=actor)
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "actor_token must carry a jti",
    }


def test_the_known_answer_body_is_the_rfc_text() -> None:
    """Guard the vector itself: it decodes to RFC 8693 §2.3's four parameters."""
    form = dict(parse_qsl(RFC8693_BODY))
    assert form["resource"] == "https://backend.example.com/api"
    assert set(form) == {
        "grant_type",
        "resource",
        "subject_token",
        "subject_token_type",
    }
    assert httpx.URL(form["resource"]).host == "backend.example.com"
