"""Step-up at the IdP stand-in: challenge, factors, push states, jwt-bearer grant."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fakeclock import FakeClock
from pydantic import ValidationError
from test_idp_exchange import (
    ISSUER,
    MCP_ID,
    PASSWORDS,
    RUNTIME_ID,
    FakeFacts,
    World,
    _claims,
    _exchange,
    _public_key,
)

from trustloop.devstack.idp.app import build_idp, create_app
from trustloop.devstack.idp.step_up import NotFoundError
from trustloop.devstack.idp.users import DemoUsers
from trustloop.devstack.jwtcheck import JwksCache
from trustloop.devstack.spire.keys import JwtAuthority
from trustloop.identity.oauth import (
    JWT_BEARER_ASSERTION,
    IdpClient,
    MfaChallengeError,
    OAuthError,
)
from trustloop.identity.rar import AuthorizationDetail, patient_read, patient_write
from trustloop.identity.step_up import (
    APPROVE_ON_DEVICE,
    StepUpClient,
    StepUpDeniedError,
    StepUpError,
    StepUpTimedOutError,
    push_message,
)
from trustloop.records.changes import medication_change_text, sha256_hex
from trustloop.settings import Settings

RESTRICTED = patient_read("p-restricted")
NOTE_TEXT = "Knee pain better; continue physiotherapy."
NOTE = patient_write("p-mine", "write_note", sha256_hex(NOTE_TEXT))
DOSE_CHANGE = medication_change_text("mr-7", "stopped", None)
PUSH = "push-clin-achen"
VERIFICATIONS = f"{ISSUER}/v1.0/authenticators/{PUSH}/verifications"
USERS = DemoUsers(PASSWORDS)


@asynccontextmanager
async def _world(tmp_path: Path, **settings: Any) -> AsyncIterator[World]:
    config = Settings(state_dir=tmp_path, idp_url=ISSUER, **settings)
    clock = FakeClock(1_800_000_000.0)
    spire = JwtAuthority(config.trust_domain, clock=clock)
    keys = JwksCache(keys=[_public_key(jwk) for jwk in json.loads(spire.jwks)["keys"]])
    idp = build_idp(config, svid_keys=keys, facts=FakeFacts(), users=USERS, clock=clock)
    transport = httpx.ASGITransport(app=create_app(idp))
    async with httpx.AsyncClient(transport=transport) as http:
        yield World(config, clock, spire, idp, IdpClient(ISSUER, http), http)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with _world(tmp_path) as built:
        yield built


@pytest.fixture
async def auto_world(tmp_path: Path) -> AsyncIterator[World]:
    async with _world(tmp_path, step_up_auto="deny") as built:
        yield built


async def _challenge(world: World) -> str:
    with pytest.raises(MfaChallengeError) as asked:
        await _exchange(world, RESTRICTED)
    return asked.value.challenge


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _start(world: World, challenge: str) -> dict[str, Any]:
    response = await world.http.post(VERIFICATIONS, headers=_bearer(challenge), json={})
    assert response.status_code == 202
    body: dict[str, Any] = response.json()
    return body


async def _state(world: World, challenge: str, txn: str) -> dict[str, Any]:
    response = await world.http.get(
        f"{VERIFICATIONS}/{txn}", headers=_bearer(challenge)
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _events(world: World) -> list[str]:
    return [e["event"] for e in world.audit_events()]


async def test_a_restricted_read_answers_an_mfa_challenge_not_an_obo(
    world: World,
) -> None:
    challenge = await _challenge(world)
    claims = _claims(challenge)

    assert claims["aud"] == ISSUER
    assert claims["sub"] == "clin-achen"
    assert claims["act"] == {"sub": MCP_ID}
    assert claims["authorization_details"] == [RESTRICTED.wire()]
    assert claims["scope"] == "mfa_challenge"
    assert "step_up_required" in _events(world)
    assert "token_exchanged" not in _events(world)


async def test_factors_list_the_one_push_authenticator(world: World) -> None:
    challenge = await _challenge(world)
    response = await world.http.get(
        f"{ISSUER}/v2.0/factors", headers=_bearer(challenge)
    )

    factors = response.json()["factors"]
    assert response.status_code == 200
    assert [f["type"] for f in factors] == ["signature"]
    assert factors[0]["attributes"]["authenticatorId"] == PUSH


async def test_factors_refuse_no_bearer_and_an_access_token(world: World) -> None:
    access = (
        await world.client.password_grant("achen", PASSWORDS["achen"])
    ).access_token

    anonymous = await world.http.get(f"{ISSUER}/v2.0/factors")
    with_access = await world.http.get(
        f"{ISSUER}/v2.0/factors", headers=_bearer(access)
    )

    assert anonymous.status_code == with_access.status_code == 401


async def test_a_push_names_the_action_and_the_patient_and_is_pending(
    world: World,
) -> None:
    challenge = await _challenge(world)
    started = await _start(world, challenge)

    assert started["state"] == "PENDING"
    assert started["transactionData"]["message"] == "Read the chart of p-restricted?"
    assert started["_links"]["self"]["href"].endswith(started["id"])
    assert (await _state(world, challenge, started["id"]))["state"] == "PENDING"
    assert "step_up_started" in _events(world)


async def test_a_push_to_another_authenticator_is_not_found(world: World) -> None:
    challenge = await _challenge(world)
    response = await world.http.post(
        f"{ISSUER}/v1.0/authenticators/push-clin-bokafor/verifications",
        headers=_bearer(challenge),
        json={},
    )
    assert response.status_code == 404


async def test_an_approved_push_redeems_for_a_stepped_up_obo(world: World) -> None:
    challenge = await _challenge(world)
    txn = (await _start(world, challenge))["id"]
    world.idp.step_up.answer("clin-achen", txn, approve=True)

    approved = await _state(world, challenge, txn)
    obo = await world.client.redeem_assertion(
        approved["assertion"], client_assertion=world.svid(), detail=RESTRICTED
    )
    claims = _claims(obo.access_token)

    assert approved["state"] == "VERIFY_SUCCESS"
    assert claims["acr"] == "urn:trustloop:acr:step-up"
    assert claims["amr"] == ["push"]
    assert isinstance(claims["auth_time"], int)
    assert claims["act"] == {"sub": MCP_ID}
    assert claims["aud"] == "trustloop-vault"
    assert claims["authorization_details"] == [RESTRICTED.wire()]
    exchanged = [e for e in world.audit_events() if e["event"] == "token_exchanged"]
    assert exchanged[-1]["jti"] == obo.jti
    assert exchanged[-1]["acr"] == "urn:trustloop:acr:step-up"
    assert exchanged[-1]["rule"] == "step_up"  # the restricted-read rule decided
    assert exchanged[-1]["requires"] == ["step_up"]
    assert "step_up_approved" in _events(world)


async def _approved_assertion(world: World) -> str:
    challenge = await _challenge(world)
    txn = (await _start(world, challenge))["id"]
    world.idp.step_up.answer("clin-achen", txn, approve=True)
    assertion: str = (await _state(world, challenge, txn))["assertion"]
    return assertion


async def test_an_assertion_redeems_once(world: World) -> None:
    assertion = await _approved_assertion(world)
    await world.client.redeem_assertion(
        assertion, client_assertion=world.svid(), detail=RESTRICTED
    )
    with pytest.raises(OAuthError) as replayed:
        await world.client.redeem_assertion(
            assertion, client_assertion=world.svid(), detail=RESTRICTED
        )
    assert replayed.value.error == "invalid_grant"
    assert world.audit_events()[-1]["event"] == "exchange_denied"
    assert world.audit_events()[-1]["rule"] == "step_up_assertion"


async def test_redeeming_other_details_is_refused(world: World) -> None:
    assertion = await _approved_assertion(world)
    with pytest.raises(OAuthError) as widened:
        await world.client.redeem_assertion(
            assertion, client_assertion=world.svid(), detail=patient_read("p-mine")
        )
    assert widened.value.error == "invalid_authorization_details"


async def test_another_client_cannot_redeem(world: World) -> None:
    assertion = await _approved_assertion(world)
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": assertion,
        "authorization_details": json.dumps([RESTRICTED.wire()]),
        "client_assertion_type": JWT_BEARER_ASSERTION,
        "client_assertion": world.svid(RUNTIME_ID),
    }
    response = await world.http.post(f"{ISSUER}/oauth2/token", data=form)
    assert response.json()["error"] == "unauthorized_client"


async def test_a_denied_push_fails_without_an_assertion(world: World) -> None:
    challenge = await _challenge(world)
    txn = (await _start(world, challenge))["id"]
    world.idp.step_up.answer("clin-achen", txn, approve=False)

    denied = await _state(world, challenge, txn)
    assert denied["state"] == "VERIFY_FAILED"
    assert "assertion" not in denied
    assert "step_up_denied" in _events(world)


async def test_an_unanswered_push_expires_after_the_timeout_once(world: World) -> None:
    challenge = await _challenge(world)
    txn = (await _start(world, challenge))["id"]
    world.clock.now += world.settings.step_up_timeout_s

    assert (await _state(world, challenge, txn))["state"] == "EXPIRED"
    assert (await _state(world, challenge, txn))["state"] == "EXPIRED"
    assert _events(world).count("step_up_timed_out") == 1
    with pytest.raises(NotFoundError):
        world.idp.step_up.answer("clin-achen", txn, approve=True)


async def test_another_challenge_cannot_read_a_transaction(world: World) -> None:
    first = await _challenge(world)
    txn = (await _start(world, first))["id"]
    second = await _challenge(world)

    response = await world.http.get(f"{VERIFICATIONS}/{txn}", headers=_bearer(second))
    assert response.status_code == 404


# -- the production client ---------------------------------------------------------


async def _answer_when_pending(world: World, *, approve: bool) -> None:
    while not world.idp.step_up.pending("clin-achen"):
        await anyio.sleep(0.005)
    world.idp.step_up.answer("clin-achen", None, approve=approve)


async def _client_step_up(
    world: World, *, timeout_s: float = 5.0, answer: bool | None = None
) -> tuple[str | None, list[str]]:
    """Run StepUpClient on a fresh challenge; (OBO jti, progress messages)."""
    heard: list[str] = []

    async def progress(elapsed: float, total: float, message: str) -> None:
        heard.append(message)

    async def assertion() -> str:
        return world.svid()

    client = StepUpClient(world.client, timeout_s=timeout_s, poll_interval_s=0.01)
    challenge = await _challenge(world)
    failure: StepUpError | None = None
    async with anyio.create_task_group() as tasks:
        if answer is not None:
            tasks.start_soon(lambda: _answer_when_pending(world, approve=answer))
        try:
            obo = await client.approve(
                challenge, RESTRICTED, client_assertion=assertion, progress=progress
            )
        except StepUpError as exc:
            failure = exc
    if failure is not None:
        raise failure
    return obo.jti, heard


async def test_the_client_steps_up_and_reports_progress(world: World) -> None:
    jti, heard = await _client_step_up(world, answer=True)
    assert jti is not None
    assert heard
    assert set(heard) == {APPROVE_ON_DEVICE}


async def test_the_client_reports_a_denial(world: World) -> None:
    with pytest.raises(StepUpDeniedError):
        await _client_step_up(world, answer=False)


async def test_the_client_gives_up_at_its_timeout(world: World) -> None:
    with pytest.raises(StepUpTimedOutError):
        await _client_step_up(world, timeout_s=0.05)


# -- auto answer, the authenticator page and its JSON endpoint -------------------


async def test_the_dev_auto_answer_answers_every_push(auto_world: World) -> None:
    challenge = await _challenge(auto_world)
    assert (await _start(auto_world, challenge))["state"] == "VERIFY_FAILED"


def test_the_auto_answer_is_refused_outside_the_local_profile() -> None:
    with pytest.raises(ValidationError, match="local profile only"):
        Settings(profile="aws", step_up_auto="approve")


async def test_the_authenticator_page_signs_in_and_approves(world: World) -> None:
    challenge = await _challenge(world)
    txn = (await _start(world, challenge))["id"]

    signed_out = await world.http.get(f"{ISSUER}/authenticator")
    await world.http.post(
        f"{ISSUER}/authenticator",
        data={"username": "achen", "password": PASSWORDS["achen"]},
    )
    listing = await world.http.get(f"{ISSUER}/authenticator")
    await world.http.post(
        f"{ISSUER}/authenticator/answer",
        data={"transaction_id": txn, "decision": "approve"},
    )

    assert 'type="password"' in signed_out.text
    assert "Read the chart of p-restricted?" in listing.text
    assert 'value="approve"' in listing.text
    assert (await _state(world, challenge, txn))["state"] == "VERIFY_SUCCESS"


async def test_the_json_endpoint_answers_the_oldest_push(world: World) -> None:
    url = f"{ISSUER}/authenticator/answers"
    body = {"username": "achen", "password": PASSWORDS["achen"], "decision": "deny"}
    challenge = await _challenge(world)
    txn = (await _start(world, challenge))["id"]

    wrong = await world.http.post(url, json={**body, "password": "no"})
    answered = await world.http.post(url, json=body)
    nothing_left = await world.http.post(url, json=body)

    assert wrong.status_code == 401
    assert answered.json() == {
        "id": txn,
        "state": "VERIFY_FAILED",
        "message": "Read the chart of p-restricted?",
    }
    assert nothing_left.status_code == 404


# -- consent (writes): the same push, showing the exact change ---------------------


def _with_change(change: str) -> dict[str, Any]:
    return {
        "transactionData": {"additionalData": [{"name": "change", "value": change}]}
    }


async def _write_challenge(world: World, detail: AuthorizationDetail = NOTE) -> str:
    with pytest.raises(MfaChallengeError) as asked:
        await _exchange(world, detail)
    return asked.value.challenge


async def _consent_push(
    world: World, change: str = NOTE_TEXT
) -> tuple[str, dict[str, Any]]:
    challenge = await _write_challenge(world)
    response = await world.http.post(
        VERIFICATIONS, headers=_bearer(challenge), json=_with_change(change)
    )
    assert response.status_code == 202
    started: dict[str, Any] = response.json()
    return challenge, started


async def test_a_note_asks_for_consent_showing_the_note(world: World) -> None:
    challenge, started = await _consent_push(world)

    assert _claims(challenge)["requires"] == ["consent"]
    assert started["transactionData"]["message"] == (
        f"Add this note to the chart of Patient/p-mine: \u201c{NOTE_TEXT}\u201d?"
    )


async def test_a_medication_change_shows_the_resource_and_new_status(
    world: World,
) -> None:
    detail = patient_write("p-mine", "update_medication", sha256_hex(DOSE_CHANGE))
    challenge = await _write_challenge(world, detail)

    response = await world.http.post(
        VERIFICATIONS, headers=_bearer(challenge), json=_with_change(DOSE_CHANGE)
    )

    assert response.json()["transactionData"]["message"] == (
        "Change MedicationRequest/mr-7 of Patient/p-mine: status stopped?"
    )


@pytest.mark.parametrize(
    "request_body",
    [
        {},
        _with_change(NOTE_TEXT + " Also stop warfarin."),
        _with_change(NOTE_TEXT.upper()),
        {"transactionData": {"additionalData": [{"name": "change", "value": 7}]}},
        {"transactionData": {"additionalData": "change"}},
    ],
    ids=["no-change", "longer-text", "other-text", "not-a-string", "not-a-list"],
)
async def test_a_consent_push_without_the_approved_change_is_refused(
    world: World, request_body: dict[str, Any]
) -> None:
    challenge = await _write_challenge(world)

    response = await world.http.post(
        VERIFICATIONS, headers=_bearer(challenge), json=request_body
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert world.idp.step_up.pending("clin-achen") == []


async def test_a_read_push_carrying_a_change_is_refused(world: World) -> None:
    challenge = await _challenge(world)

    response = await world.http.post(
        VERIFICATIONS, headers=_bearer(challenge), json=_with_change(NOTE_TEXT)
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_the_change_is_audited_by_its_digest_never_its_text(
    world: World,
) -> None:
    await _consent_push(world)

    (started,) = [e for e in world.audit_events() if e["event"] == "step_up_started"]
    assert started["change_sha256"] == NOTE.change_sha256
    assert started["requires"] == ["consent"]
    assert NOTE_TEXT not in world.audit_text


async def test_the_client_sends_the_change_and_the_clinician_sees_it(
    world: World,
) -> None:
    client = StepUpClient(world.client, timeout_s=5.0, poll_interval_s=0.01)
    challenge = await _write_challenge(world)
    shown: list[str] = []

    async def approve_when_pending() -> None:
        while not (pending := world.idp.step_up.pending("clin-achen")):
            await anyio.sleep(0.005)
        shown.append(pending[0].message)
        world.idp.step_up.answer("clin-achen", None, approve=True)

    async def assertion() -> str:
        return world.svid()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(approve_when_pending)
        obo = await client.approve(
            challenge, NOTE, client_assertion=assertion, change_text=NOTE_TEXT
        )

    assert shown == [
        f"Add this note to the chart of Patient/p-mine: \u201c{NOTE_TEXT}\u201d?"
    ]
    assert _claims(obo.access_token)["consent"] is True


async def test_an_approved_consent_yields_an_obo_that_says_so(world: World) -> None:
    challenge, started = await _consent_push(world)
    world.idp.step_up.answer("clin-achen", started["id"], approve=True)

    approved = await _state(world, challenge, started["id"])
    obo = await world.client.redeem_assertion(
        approved["assertion"], client_assertion=world.svid(), detail=NOTE
    )
    claims = _claims(obo.access_token)

    assert claims["consent"] is True
    assert claims["amr"] == ["push"]
    assert claims["authorization_details"] == [NOTE.wire()]
    exchanged = [e for e in world.audit_events() if e["event"] == "token_exchanged"]
    # The rule that decided, not "step_up": an auditor must not read a note as a
    # restricted chart's read (a new user's walkthrough, fourth round).
    assert exchanged[-1]["rule"] == "write_note"
    assert exchanged[-1]["requires"] == ["consent"]


async def test_a_denied_consent_yields_nothing(world: World) -> None:
    challenge, started = await _consent_push(world)
    world.idp.step_up.answer("clin-achen", started["id"], approve=False)

    denied = await _state(world, challenge, started["id"])
    assert denied["state"] == "VERIFY_FAILED"
    assert "assertion" not in denied


def test_the_clients_own_message_shows_the_change_as_verify_would_show_it() -> None:
    medication = patient_write("p-mine", "update_medication", sha256_hex(DOSE_CHANGE))

    assert push_message(NOTE, NOTE_TEXT) == (
        f"Add this note to the chart of Patient/p-mine: \u201c{NOTE_TEXT}\u201d?"
    )
    assert push_message(medication, DOSE_CHANGE) == (
        "Change MedicationRequest/mr-7 of Patient/p-mine: status stopped?"
    )
    assert push_message(RESTRICTED, None) == "Read the chart of p-restricted?"
