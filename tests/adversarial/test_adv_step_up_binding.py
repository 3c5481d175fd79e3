"""A step-up or consent challenge stays tied to the request it answered.

It once did not: the challenge named only the clinician, so after a logout, or
after the clinician left the patient's care team, whoever held it could still start
pushes and redeem an approval for a stepped-up OBO, and one challenge gave any
number of OBOs. Now the challenge names the access token it answered, starts one
push, and the redemption checks that token and asks the policy again.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from adversary import ACHEN, claims_of
from idp_lab import refused

from trustloop.devstack.idp.directory import CareTeamEntry, Directory
from trustloop.devstack.idp.policy import PolicyUnavailableError
from trustloop.devstack.idp.step_up import (
    JWT_BEARER_GRANT,
    MAX_PENDING_PER_CLINICIAN,
    NotFoundError,
    authenticator_id,
)
from trustloop.identity.oauth import JWT_BEARER_ASSERTION

if TYPE_CHECKING:
    from adversary import Probe
    from idp_lab import Lab

pytestmark = pytest.mark.e2e


def _restricted_on_team(probe: Probe) -> str:
    rows = probe.query(
        "select p.id from clinical.patients p join clinical.care_team_members m"
        " on m.patient_id = p.id where p.sensitive and m.clinician_sub = %s"
        " order by p.id limit 1",
        ACHEN,
    )
    assert rows, "the samples hold no restricted patient on Dr. Chen's team"
    return str(rows[0][0])


async def _call(
    lab: Lab, method: str, path: str, *, bearer: str, **kw: Any
) -> httpx.Response:
    transport = httpx.ASGITransport(app=lab.app)
    headers = {"Authorization": f"Bearer {bearer}"}
    async with httpx.AsyncClient(transport=transport, base_url=lab.issuer) as c:
        return await c.request(method, path, headers=headers, **kw)


async def _challenge(lab: Lab, subject: str, details: str) -> str:
    response = await lab.token(
        lab.form(subject_token=subject, authorization_details=details)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "mfa_challenge", body
    token: str = body["access_token"]
    return token


def _verifications(challenge: str) -> str:
    return f"/v1.0/authenticators/{authenticator_id(claims_of(challenge)['sub'])}/verifications"


async def _approved_assertion(lab: Lab, challenge: str) -> str:
    """Start the push, approve it on the device, read the signed assertion."""
    path = _verifications(challenge)
    started = await _call(lab, "POST", path, bearer=challenge, json={})
    assert started.status_code == 202, started.text
    txn = started.json()["id"]
    lab.idp.step_up.answer(claims_of(challenge)["sub"], txn, approve=True)
    polled = await _call(lab, "GET", f"{path}/{txn}", bearer=challenge)
    assert polled.status_code == 200, polled.text
    assertion: str = polled.json()["assertion"]
    return assertion


def _redeem_form(lab: Lab, assertion: str, details: str) -> dict[str, str]:
    return {
        "grant_type": JWT_BEARER_GRANT,
        "assertion": assertion,
        "authorization_details": details,
        "client_assertion_type": JWT_BEARER_ASSERTION,
        "client_assertion": lab.svid(),
    }


async def _logout(lab: Lab, subject: str) -> None:
    transport = httpx.ASGITransport(app=lab.app)
    async with httpx.AsyncClient(transport=transport, base_url=lab.issuer) as c:
        out = await c.post(
            "/oauth2/logout", data={"client_id": "trustloop-cli", "token": subject}
        )
    assert out.status_code == 200, out.text


async def _approved(lab: Lab, probe: Probe, subject: str) -> tuple[str, str, str]:
    """Details for a restricted patient, their challenge and its approved assertion."""
    details = lab.detail(_restricted_on_team(probe))
    challenge = await _challenge(lab, subject, details)
    return details, challenge, await _approved_assertion(lab, challenge)


async def test_the_challenge_names_the_access_token_it_answered(
    lab: Lab, probe: Probe
) -> None:
    subject = lab.access()

    details, challenge, assertion = await _approved(lab, probe, subject)
    granted = await lab.token(_redeem_form(lab, assertion, details))

    named = claims_of(challenge)["subject_token"]
    assert named["jti"] == claims_of(subject)["jti"]
    assert named["sid"] == claims_of(subject)["sid"]
    assert granted.status_code == 200, granted.text
    obo = claims_of(granted.json()["access_token"])
    records = [json.loads(line) for line in lab.audit_text().splitlines()]
    record = next(r for r in records if r.get("jti") == obo["jti"])
    required = next(r for r in records if r.get("jti") == claims_of(challenge)["jti"])
    assert record["subject_jti"] == named["jti"]  # audit trace follows it
    assert required["event"] == "step_up_required"
    assert required["subject_jti"] == named["jti"]


async def test_a_challenge_starts_no_push_after_the_clinician_logged_out(
    lab: Lab, probe: Probe
) -> None:
    subject = lab.access()
    challenge = await _challenge(lab, subject, lab.detail(_restricted_on_team(probe)))
    await _logout(lab, subject)

    started = await _call(lab, "POST", _verifications(challenge), bearer=challenge)

    assert started.status_code == 401
    assert not lab.idp.step_up.pending(ACHEN)


async def test_an_approval_is_not_redeemed_after_the_clinician_logged_out(
    lab: Lab, probe: Probe
) -> None:
    subject = lab.access()
    details, _, assertion = await _approved(lab, probe, subject)
    await _logout(lab, subject)

    body = await refused(lab, _redeem_form(lab, assertion, details), "invalid_grant")

    assert "sign-in" in body["error_description"]


async def test_an_approval_is_not_redeemed_after_leaving_the_care_team(
    lab: Lab, probe: Probe
) -> None:
    patient = _restricted_on_team(probe)
    details = lab.detail(patient)
    challenge = await _challenge(lab, lab.access(), details)
    assertion = await _approved_assertion(lab, challenge)
    facts = lab.idp.facts
    assert isinstance(facts, Directory)
    team = facts.get_care_team(ACHEN)
    assert team is not None
    others = [p for p in team.patients if p != patient]
    facts.put_care_team(ACHEN, CareTeamEntry(role=team.role, patients=others))
    try:
        body = await refused(
            lab, _redeem_form(lab, assertion, details), "access_denied", 403
        )
    finally:
        facts.put_care_team(ACHEN, team)

    assert body["error_description"].startswith(f"Patient/{patient}:")


async def test_one_challenge_starts_one_push_and_gives_one_obo(
    lab: Lab, probe: Probe
) -> None:
    details = lab.detail(_restricted_on_team(probe))
    challenge = await _challenge(lab, lab.access(), details)
    assertion = await _approved_assertion(lab, challenge)

    again = await _call(lab, "POST", _verifications(challenge), bearer=challenge)
    first = await lab.token(_redeem_form(lab, assertion, details))
    replayed = await lab.token(_redeem_form(lab, assertion, details))

    assert again.status_code == 400
    assert "already started" in again.json()["error_description"]
    assert first.status_code == 200, first.text
    assert (replayed.status_code, replayed.json()["error"]) == (400, "invalid_grant")


async def test_a_passing_failure_at_redemption_does_not_use_up_the_approval(
    lab: Lab, probe: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """503 invites a retry: the retry must still find the approval redeemable."""
    details = lab.detail(_restricted_on_team(probe))
    assertion = await _approved_assertion(
        lab, await _challenge(lab, lab.access(), details)
    )
    facts = lab.idp.facts
    assert isinstance(facts, Directory)

    async def unavailable(*_: object) -> None:
        raise PolicyUnavailableError("directory being rewritten")

    with monkeypatch.context() as patched:
        patched.setattr(facts, "role", unavailable)
        first = await lab.token(_redeem_form(lab, assertion, details))
    retry = await lab.token(_redeem_form(lab, assertion, details))

    assert (first.status_code, first.json()["error"]) == (
        503,
        "temporarily_unavailable",
    )
    assert retry.status_code == 200, retry.text


async def test_pushes_are_forgotten_once_nothing_can_use_them(
    lab: Lab, probe: Probe
) -> None:
    details = lab.detail(_restricted_on_team(probe))
    old = await _challenge(lab, lab.access(), details)
    path = _verifications(old)
    started = await _call(lab, "POST", path, bearer=old, json={})
    txn = started.json()["id"]
    before = lab.clock.now
    try:
        # The push's answer window, its assertion's lifetime and the leeway.
        lab.clock.now += lab.settings.step_up_timeout_s + 60 + 5 + 1
        fresh = await _challenge(lab, lab.access(), details)
        kicked = await _call(lab, "POST", _verifications(fresh), bearer=fresh, json={})
        lab.idp.step_up.answer(ACHEN, kicked.json()["id"], approve=False)
        forgotten = await _call(lab, "GET", f"{path}/{txn}", bearer=old)
    finally:
        lab.clock.now = before

    assert kicked.status_code == 202, kicked.text
    assert forgotten.status_code in (401, 404)  # the challenge expired with it
    assert txn not in {p.id for p in lab.idp.step_up.pending(ACHEN)}


async def test_a_clinicians_phone_is_not_flooded_with_pushes(
    lab: Lab, probe: Probe
) -> None:
    details = lab.detail(_restricted_on_team(probe))
    started: list[str] = []
    try:
        while len(lab.idp.step_up.pending(ACHEN)) < MAX_PENDING_PER_CLINICIAN:
            challenge = await _challenge(lab, lab.access(), details)
            push = await _call(lab, "POST", _verifications(challenge), bearer=challenge)
            assert push.status_code == 202, push.text
            started.append(push.json()["id"])
        challenge = await _challenge(lab, lab.access(), details)

        flooded = await _call(lab, "POST", _verifications(challenge), bearer=challenge)
    finally:
        for txn in started:
            lab.idp.step_up.answer(ACHEN, txn, approve=False)

    assert flooded.status_code == 400
    assert "too many" in flooded.json()["error_description"]


async def test_a_push_whose_sign_in_ended_is_not_offered_for_an_answer(
    lab: Lab, probe: Probe
) -> None:
    subject = lab.access()
    challenge = await _challenge(lab, subject, lab.detail(_restricted_on_team(probe)))
    started = await _call(lab, "POST", _verifications(challenge), bearer=challenge)
    txn = started.json()["id"]
    await _logout(lab, subject)

    assert txn not in {p.id for p in lab.idp.step_up.pending(ACHEN)}
    with pytest.raises(NotFoundError):
        lab.idp.step_up.answer(ACHEN, txn, approve=True)
