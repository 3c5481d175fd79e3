"""Hostile token exchanges against the real IdP app: forged and misaddressed tokens.

Forged subject tokens, audiences that are not exactly ours, ``exp``/``nbf`` at the
edges of the leeway, foreign or misaddressed actor tokens and client assertions,
replayed actor ``jti``s. The IdP is the in-process lab of ``support/idp_lab.py``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from adversary import BOKAFOR, claims_of, compact, with_payload
from idp_lab import LEEWAY, refused
from joserfc import jwt
from joserfc.jwk import ECKey

if TYPE_CHECKING:
    from collections.abc import Callable

    from idp_lab import Lab

pytestmark = pytest.mark.e2e


async def test_the_lab_grants_a_well_formed_exchange(lab: Lab) -> None:
    """Control: the untouched form is granted, so every refusal below is the attack's."""
    response = await lab.token(lab.form())

    assert response.status_code == 200, response.text
    assert response.json()["authorization_details"] == json.loads(lab.detail())


# -- forged subject tokens ---------------------------------------------------------


def _public_jwk(lab: Lab) -> dict[str, Any]:
    return lab.idp.keys.public_keys()[0].as_dict(private=False)


def _forged(kind: str, lab: Lab) -> str:
    claims = lab.access_claims()
    kid = lab.idp.keys.active_kid
    header = {"alg": "HS256", "kid": kid, "typ": "at+jwt"}
    public = lab.idp.keys.public_keys()[0]
    attacker = ECKey.generate_key("P-256", parameters={"kid": kid})
    forgeries: dict[str, Callable[[], str]] = {
        "alg-none": lambda: compact({**header, "alg": "none"}, claims),
        "alg-none-no-kid": lambda: compact({"alg": "none", "typ": "at+jwt"}, claims),
        "hs256-with-public-jwk": lambda: compact(
            header, claims, json.dumps(_public_jwk(lab)).encode()
        ),
        "hs256-with-public-pem": lambda: compact(
            header, claims, public.as_pem(private=False)
        ),
        "unknown-kid": lambda: jwt.encode(
            {"alg": "ES256", "kid": "attacker-kid", "typ": "at+jwt"},
            claims,
            ECKey.generate_key("P-256"),
            algorithms=["ES256"],
        ),
        "known-kid-foreign-key": lambda: jwt.encode(
            {"alg": "ES256", "kid": kid, "typ": "at+jwt"},
            claims,
            attacker,
            algorithms=["ES256"],
        ),
        "wrong-issuer": lambda: lab.access(iss="https://evil.example"),
        "issuer-trailing-slash": lambda: lab.access(iss=lab.issuer + "/"),
        "typ-jwt-not-at+jwt": lambda: lab.access(typ="JWT"),
        "payload-swapped-to-another-clinician": lambda: with_payload(
            lab.access(), {**claims_of(lab.access()), "sub": BOKAFOR}
        ),
        "jwt-svid-as-subject": lambda: lab.svid(),
        "three-empty-parts": lambda: "..",
    }
    return forgeries[kind]()


FORGERIES = [
    "alg-none",
    "alg-none-no-kid",
    "hs256-with-public-jwk",
    "hs256-with-public-pem",
    "unknown-kid",
    "known-kid-foreign-key",
    "wrong-issuer",
    "issuer-trailing-slash",
    "typ-jwt-not-at+jwt",
    "payload-swapped-to-another-clinician",
    "jwt-svid-as-subject",
    "three-empty-parts",
]


@pytest.mark.parametrize("kind", FORGERIES)
async def test_a_forged_subject_token_is_invalid_request(lab: Lab, kind: str) -> None:
    body = await refused(
        lab, lab.form(subject_token=_forged(kind, lab)), "invalid_request"
    )

    assert body["error_description"] == "subject_token is invalid"


# -- audience: exact match only, as a string or in a list ---------------------------


def _audiences(lab: Lab) -> dict[str, object]:
    mcp = lab.settings.mcp_resource
    return {
        "str-trailing-slash": mcp + "/",
        "str-upper-case": mcp.upper(),
        "str-suffix": mcp + "x",
        "str-prefix-only": mcp.rsplit("/", 1)[0],
        "str-query": mcp + "?aud=" + mcp,
        "str-other-resource": "http://127.0.0.1:1/mcp",
        "str-empty": "",
        "str-vault": lab.settings.vault_audience,
        "list-trailing-slash": [mcp + "/"],
        "list-empty": [],
        "list-nested": [[mcp]],
        "list-wildcard": ["*"],
        "list-joined": [f"{mcp} {mcp}"],
        "object": {"aud": mcp},
        "null": None,
    }


AUDIENCES = [
    "str-trailing-slash",
    "str-upper-case",
    "str-suffix",
    "str-prefix-only",
    "str-query",
    "str-other-resource",
    "str-empty",
    "str-vault",
    "list-trailing-slash",
    "list-empty",
    "list-nested",
    "list-wildcard",
    "list-joined",
    "object",
    "null",
]


@pytest.mark.parametrize("case", AUDIENCES)
async def test_a_subject_token_for_another_audience_is_refused(
    lab: Lab, case: str
) -> None:
    token = lab.access(aud=_audiences(lab)[case])  # None: no aud claim at all

    await refused(lab, lab.form(subject_token=token), "invalid_request")


@pytest.mark.parametrize("shape", ["string", "list-with-others"])
async def test_the_exact_audience_is_accepted_as_string_or_list_member(
    lab: Lab, shape: str
) -> None:
    """Control for the audience cases: only the exact resource name is accepted."""
    mcp = lab.settings.mcp_resource
    aud: object = mcp if shape == "string" else ["http://127.0.0.1:1/mcp", mcp]

    response = await lab.token(lab.form(subject_token=lab.access(aud=aud)))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "aud",
    ["issuer-trailing-slash", "list-of-vault", "empty-list"],
)
async def test_a_client_assertion_for_another_audience_is_invalid_client(
    lab: Lab, aud: str
) -> None:
    audiences = {
        "issuer-trailing-slash": lab.issuer + "/",
        "list-of-vault": [lab.settings.vault_audience],
        "empty-list": [],
    }
    assertion = lab.svid(aud=audiences[aud])

    await refused(lab, lab.form(client_assertion=assertion), "invalid_client", 401)


# -- expiry and not-before at the edges of the 5 s leeway ----------------------------


def _now(lab: Lab) -> int:
    return int(lab.clock.now)


EDGES = [
    "subject-expired-leeway-plus-1",
    "subject-not-before-leeway-plus-1",
    "subject-exp-missing",
    "subject-exp-a-string",
    "actor-expired-leeway-plus-1",
    "actor-not-before-leeway-plus-1",
    "client-assertion-expired-leeway-plus-1",
]


def _edge_form(lab: Lab, case: str) -> tuple[dict[str, str], str, int]:
    now = _now(lab)
    late, early = now - LEEWAY - 1, now + LEEWAY + 1
    forms: dict[str, tuple[dict[str, str], str, int]] = {
        "subject-expired-leeway-plus-1": (
            lab.form(subject_token=lab.access(exp=late)),
            "invalid_request",
            400,
        ),
        "subject-not-before-leeway-plus-1": (
            lab.form(subject_token=lab.access(nbf=early)),
            "invalid_request",
            400,
        ),
        "subject-exp-missing": (
            lab.form(subject_token=lab.access(exp=None)),
            "invalid_request",
            400,
        ),
        "subject-exp-a-string": (
            lab.form(subject_token=lab.access(exp=str(now + 900))),
            "invalid_request",
            400,
        ),
        "actor-expired-leeway-plus-1": (
            lab.form(actor_token=lab.svid(exp=late)),
            "invalid_request",
            400,
        ),
        "actor-not-before-leeway-plus-1": (
            lab.form(actor_token=lab.svid(nbf=early)),
            "invalid_request",
            400,
        ),
        "client-assertion-expired-leeway-plus-1": (
            lab.form(client_assertion=lab.svid(exp=late)),
            "invalid_client",
            401,
        ),
    }
    return forms[case]


@pytest.mark.parametrize("case", EDGES)
async def test_a_token_just_past_the_leeway_is_refused(lab: Lab, case: str) -> None:
    form, error, status = _edge_form(lab, case)

    await refused(lab, form, error, status)


async def test_tokens_at_the_edge_of_the_leeway_are_still_accepted(lab: Lab) -> None:
    """Control for the edge cases: exactly 5 s late or early is inside the leeway."""
    now = _now(lab)
    form = lab.form(
        subject_token=lab.access(exp=now - LEEWAY, nbf=now + LEEWAY),
        actor_token=lab.svid(exp=now - LEEWAY, nbf=now + LEEWAY),
    )

    response = await lab.token(form)

    assert response.status_code == 200, response.text


# -- actor tokens and client assertions ----------------------------------------------


ACTORS = [
    "another-trust-domain",
    "lookalike-trust-domain",
    "trust-domain-only",
    "audience-vault",
    "audience-string-other",
    "agent-runtime-not-the-client",
    "no-jti",
    "empty-jti",
]


def _actor(lab: Lab, case: str) -> str:
    vault = lab.settings.vault_audience
    actors: dict[str, Callable[[], str]] = {
        "another-trust-domain": lambda: lab.svid("spiffe://evil.example/mcp-server"),
        "lookalike-trust-domain": lambda: lab.svid(
            "spiffe://trustloop.local.evil.example/mcp-server"
        ),
        "trust-domain-only": lambda: lab.svid("spiffe://trustloop.local/"),
        "audience-vault": lambda: lab.svid(aud=[vault]),
        "audience-string-other": lambda: lab.svid(aud="https://evil.example"),
        "agent-runtime-not-the-client": lambda: lab.svid(
            lab.settings.runtime_spiffe_id
        ),
        "no-jti": lambda: lab.svid(jti=None),
        "empty-jti": lambda: lab.svid(jti=""),
    }
    return actors[case]()


@pytest.mark.parametrize("case", ACTORS)
async def test_a_foreign_or_misaddressed_actor_token_is_invalid_request(
    lab: Lab, case: str
) -> None:
    await refused(lab, lab.form(actor_token=_actor(lab, case)), "invalid_request")


CLIENTS = [
    ("assertion-from-another-trust-domain", "invalid_client", 401),
    ("assertion-alg-none", "invalid_client", 401),
    ("client-id-names-someone-else", "invalid_client", 401),
    ("agent-runtime-may-not-exchange", "unauthorized_client", 400),
]


@pytest.mark.parametrize(("case", "error", "status"), CLIENTS)
async def test_a_client_that_may_not_exchange_is_refused(
    lab: Lab, case: str, error: str, status: int
) -> None:
    svid = lab.svid()
    overrides: dict[str, dict[str, str | None]] = {
        "assertion-from-another-trust-domain": {
            "client_assertion": lab.svid("spiffe://evil.example/mcp-server")
        },
        "assertion-alg-none": {
            "client_assertion": compact({"alg": "none"}, claims_of(svid))
        },
        "client-id-names-someone-else": {"client_id": lab.settings.runtime_spiffe_id},
        "agent-runtime-may-not-exchange": {
            "client_assertion": lab.svid(lab.settings.runtime_spiffe_id),
            "actor_token": lab.svid(lab.settings.runtime_spiffe_id),
        },
    }

    await refused(lab, lab.form(**overrides[case]), error, status)


async def test_a_subject_whose_may_act_names_another_actor_is_refused(
    lab: Lab,
) -> None:
    token = lab.access(may_act={"sub": "spiffe://trustloop.local/agent-runtime"})

    await refused(lab, lab.form(subject_token=token), "invalid_request")


# -- replayed actor tokens -------------------------------------------------------------


@pytest.mark.parametrize("second_subject", ["same-clinician", "another-clinician"])
async def test_a_replayed_actor_token_is_invalid_grant(
    lab: Lab, second_subject: str
) -> None:
    actor = lab.svid()
    first = await lab.token(lab.form(actor_token=actor))
    assert first.status_code == 200, first.text
    subject = (
        lab.access()
        if second_subject == "same-clinician"
        else lab.idp.keys.sign(lab.access_claims("bokafor"), typ="at+jwt")
    )

    body = await refused(
        lab, lab.form(actor_token=actor, subject_token=subject), "invalid_grant"
    )

    assert body["error_description"] == "actor_token was already used"
