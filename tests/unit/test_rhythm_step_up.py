"""Step 2 of the rhythm when the IdP asks for a step-up (fakes, no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rhythm_fakes import OBO_JTI, USER_TOKEN, FakeIdp, FakeStepUp, Stack, make_stack

from trustloop.identity.oauth import MfaChallengeError
from trustloop.identity.rar import patient_read, patient_write
from trustloop.identity.rhythm import ToolCallError
from trustloop.identity.step_up import StepUpDeniedError, StepUpTimedOutError
from trustloop.records.changes import note_text, sha256_hex

DETAIL = patient_read("p-restricted")
CHALLENGE = "mfa-challenge-SECRET-5e1d"


def _stack(tmp_path: Path, step_up: FakeStepUp | None) -> Stack:
    idp = FakeIdp(exchange_error=MfaChallengeError(CHALLENGE, 300))
    return make_stack(tmp_path, idp=idp, step_up=step_up)


def _audit(stack: Stack) -> dict[str, Any]:
    line: dict[str, Any] = json.loads(stack.audit_text().splitlines()[-1])
    return line


async def test_an_approved_step_up_yields_the_obo_and_reports_progress(
    tmp_path: Path,
) -> None:
    step_up = FakeStepUp()
    stack = _stack(tmp_path, step_up)
    heard: list[str] = []

    async def progress(elapsed: float, total: float, message: str) -> None:
        heard.append(message)

    async with stack.rhythm.call(
        USER_TOKEN, DETAIL, tool="read_patient_record", progress=progress
    ) as call:
        assert call.jti == OBO_JTI

    assert step_up.challenges == [CHALLENGE]
    assert heard == ["approve on your device"]
    assert _audit(stack)["step_up"] is True
    assert _audit(stack)["consent"] is False
    assert _audit(stack)["decision"] == "granted"
    assert CHALLENGE not in stack.audit_text()


@pytest.mark.parametrize(
    ("error", "description"),
    [
        (StepUpDeniedError("no"), "the clinician declined the step-up"),
        (StepUpTimedOutError("late"), "step-up approval timed out"),
    ],
)
async def test_a_declined_or_unanswered_step_up_is_access_denied(
    tmp_path: Path, error: Exception, description: str
) -> None:
    stack = _stack(tmp_path, FakeStepUp(error=error))

    with pytest.raises(ToolCallError) as refused:
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            pass

    assert (refused.value.code, refused.value.description) == (
        "access_denied",
        description,
    )
    assert stack.vault.issued == []
    assert _audit(stack)["step_up"] is True
    assert _audit(stack)["decision"] == "denied"


async def test_without_a_step_up_client_a_challenge_is_access_denied(
    tmp_path: Path,
) -> None:
    stack = _stack(tmp_path, None)

    with pytest.raises(ToolCallError) as refused:
        async with stack.rhythm.call(USER_TOKEN, DETAIL, tool="read_patient_record"):
            pass

    assert refused.value.code == "access_denied"
    assert stack.vault.issued == []


async def test_a_plain_call_records_no_step_up(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)
    async with stack.rhythm.call(USER_TOKEN, patient_read("p-1"), tool="t"):
        pass
    assert _audit(stack)["step_up"] is False


async def test_a_write_passes_its_change_to_the_push_and_records_consent(
    tmp_path: Path,
) -> None:
    step_up = FakeStepUp()
    stack = _stack(tmp_path, step_up)
    change = note_text("  Started physiotherapy.  ")
    detail = patient_write("p-1", "write_note", sha256_hex(change))

    async with stack.rhythm.call(
        USER_TOKEN, detail, tool="write_clinical_note", change_text=change
    ):
        pass

    assert step_up.change_texts == [change]
    assert (_audit(stack)["step_up"], _audit(stack)["consent"]) == (True, True)
    assert change not in stack.audit_text()


async def test_a_declined_consent_records_no_consent(tmp_path: Path) -> None:
    stack = _stack(tmp_path, FakeStepUp(error=StepUpDeniedError("no")))
    detail = patient_write("p-1", "write_note", sha256_hex("x"))

    with pytest.raises(ToolCallError) as refused:
        async with stack.rhythm.call(
            USER_TOKEN, detail, tool="write_clinical_note", change_text="x"
        ):
            pass

    assert str(refused.value) == "access_denied: the clinician declined the change"
    assert (_audit(stack)["decision"], _audit(stack)["consent"]) == ("denied", False)
