"""The write tools through the real MCP server over HTTP, on the real stack.

Consent pushes are answered the way a clinician's device does, on the IdP's
authenticator API (``POST /authenticator/answers``), while the call waits. The
database is read as admin to prove what was (and was not) written.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import pytest
from mcp_tools_kit import (
    APPROVE_ON_DEVICE,
    admin_query,
    assert_r4b,
    audit,
    audit_text,
    call_answering,
    call_tool,
    payload_of,
    roster_of,
    text_of,
)
from stackkit import running_stack

from trustloop.cli.session import sign_in
from trustloop.devstack.demo import CLINICIANS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.integration

PHYSICIAN = CLINICIANS[0]
NURSE = next(c for c in CLINICIANS if c.role == "nurse")


@pytest.fixture(scope="module")
def stack(pg_state_dir_factory: Callable[[str], Path]) -> Iterator[Stack]:
    with running_stack(pg_state_dir_factory("mcp-tools-writes")) as running:
        yield running


@pytest.fixture(scope="module")
def tokens(stack: Stack) -> dict[str, str]:
    return {c.username: sign_in(stack.settings, c.username) for c in CLINICIANS}


def _patient_with_medication(stack: Stack, sub: str) -> tuple[str, str, str]:
    """(patient id, MedicationRequest id, its status) on ``sub``'s team."""
    for pid, _, sensitive in roster_of(stack, sub):
        rows = admin_query(
            stack,
            "select id, status from clinical.medication_requests "
            "where patient_id = %s and status <> 'stopped' order by id limit 1",
            pid,
        )
        if rows and not sensitive:
            return pid, str(rows[0][0]), str(rows[0][1])
    raise AssertionError(f"no medication on {sub}'s team")


def _first_patient(stack: Stack, sub: str) -> str:
    return next(pid for pid, _, sensitive in roster_of(stack, sub) if not sensitive)


def _notes_of(stack: Stack, patient_id: str) -> list[tuple[Any, ...]]:
    return admin_query(
        stack,
        "select id, author_sub, obo_jti, text from clinical.notes "
        "where patient_id = %s order by created_at",
        patient_id,
    )


def _last_tool_call(stack: Stack) -> dict[str, Any]:
    return [e for e in audit(stack, "mcp") if e.get("event") == "tool_call"][-1]


async def test_an_approved_note_is_written_as_the_clinician_and_read_back(
    stack: Stack, tokens: dict[str, str]
) -> None:
    patient_id = _first_patient(stack, PHYSICIAN.sub)
    text = "Knee pain improved on physiotherapy; review in two weeks. Café ok."
    heard: list[str] = []

    result, answer = await call_answering(
        stack,
        tokens[PHYSICIAN.username],
        "write_clinical_note",
        {"patient_id": patient_id, "text": f"  {text}\n"},
        username=PHYSICIAN.username,
        approve=True,
        heard=heard,
    )
    payload = payload_of(result)
    line = _last_tool_call(stack)
    chart = payload_of(
        await call_tool(
            stack,
            tokens[PHYSICIAN.username],
            "read_patient_record",
            {"patient_id": patient_id},
        )
    )

    note = payload["note"]
    assert_r4b(note)
    assert base64.b64decode(note["content"][0]["attachment"]["data"]).decode() == text
    assert note["author"] == [{"reference": f"Practitioner/{PHYSICIAN.sub}"}]
    assert answer["message"] == (
        f"Add this note to the chart of Patient/{patient_id}: \u201c{text}\u201d?"
    )
    assert APPROVE_ON_DEVICE in heard
    (stored,) = [row for row in _notes_of(stack, patient_id) if row[0] == note["id"]]
    assert stored[1:] == (PHYSICIAN.sub, payload["obo_jti"], text)
    assert chart["notes"][0]["id"] == note["id"]
    assert (line["tool"], line["consent"], line["step_up"]) == (
        "write_clinical_note",
        True,
        True,
    )
    assert text not in audit_text(stack, "idp") + audit_text(stack, "mcp")


async def test_a_declined_note_writes_nothing(
    stack: Stack, tokens: dict[str, str]
) -> None:
    patient_id = _first_patient(stack, PHYSICIAN.sub)
    before = _notes_of(stack, patient_id)

    result, answer = await call_answering(
        stack,
        tokens[PHYSICIAN.username],
        "write_clinical_note",
        {"patient_id": patient_id, "text": "Do not write me."},
        username=PHYSICIAN.username,
        approve=False,
    )

    assert answer["state"] == "VERIFY_FAILED"
    assert result.is_error
    assert text_of(result) == "access_denied: the clinician declined the change"
    assert _notes_of(stack, patient_id) == before
    line = _last_tool_call(stack)
    assert (line["decision"], line["consent"], line["lease_id"]) == (
        "denied",
        False,
        None,
    )


async def test_a_medication_change_keeps_the_previous_version(
    stack: Stack, tokens: dict[str, str]
) -> None:
    patient_id, request_id, old_status = _patient_with_medication(stack, PHYSICIAN.sub)
    (old_resource,) = admin_query(
        stack,
        "select resource from clinical.medication_requests where id = %s",
        request_id,
    )[0]

    result, answer = await call_answering(
        stack,
        tokens[PHYSICIAN.username],
        "update_medication",
        {
            "patient_id": patient_id,
            "medication_request_id": request_id,
            "status": "stopped",
            "dosage": "Take none",
        },
        username=PHYSICIAN.username,
        approve=True,
    )

    payload = payload_of(result)
    assert_r4b(payload["medication_request"])
    assert_r4b(payload["previous"])
    assert payload["previous"] == old_resource
    assert payload["medication_request"]["status"] == "stopped"
    assert payload["medication_request"]["dosageInstruction"][0]["text"] == "Take none"
    assert answer["message"] == (
        f"Change MedicationRequest/{request_id} of Patient/{patient_id}: "
        "status stopped, dosage Take none?"
    )
    history = admin_query(
        stack,
        "select previous, changed_by, obo_jti from clinical.medication_changes "
        "where medication_request_id = %s",
        request_id,
    )
    assert history == [(old_resource, PHYSICIAN.sub, payload["obo_jti"])]
    (now,) = admin_query(
        stack,
        "select status from clinical.medication_requests where id = %s",
        request_id,
    )
    assert (old_status, now[0]) != ("stopped", "stopped")
    assert now[0] == "stopped"
    assert f"status {old_status} \u2192 stopped" in payload["summary"]


async def test_a_nurse_is_refused_a_medication_change(
    stack: Stack, tokens: dict[str, str]
) -> None:
    patient_id, request_id, _ = _patient_with_medication(stack, NURSE.sub)
    changes = admin_query(stack, "select count(*) from clinical.medication_changes")

    result = await call_tool(
        stack,
        tokens[NURSE.username],
        "update_medication",
        {
            "patient_id": patient_id,
            "medication_request_id": request_id,
            "status": "on-hold",
        },
    )

    assert result.is_error
    assert text_of(result).startswith("access_denied: ")
    assert admin_query(stack, "select count(*) from clinical.medication_changes") == (
        changes
    )
    refused = [e for e in audit(stack, "idp") if e["event"] == "exchange_denied"][-1]
    assert refused["sub"] == NURSE.sub


async def test_a_note_on_a_restricted_patient_needs_one_approved_push(
    stack: Stack, tokens: dict[str, str]
) -> None:
    restricted = [
        (pid, clinician)
        for clinician in CLINICIANS
        for pid, _, sensitive in roster_of(stack, clinician.sub)
        if sensitive
    ]
    patient_id, clinician = restricted[0]

    result, answer = await call_answering(
        stack,
        tokens[clinician.username],
        "write_clinical_note",
        {"patient_id": patient_id, "text": "Seen in private clinic."},
        username=clinician.username,
        approve=True,
    )

    payload = payload_of(result)
    assert "Seen in private clinic." in answer["message"]
    stored = [
        row for row in _notes_of(stack, patient_id) if row[0] == payload["note"]["id"]
    ]
    assert [row[1:] for row in stored] == [
        (clinician.sub, payload["obo_jti"], "Seen in private clinic.")
    ]
    assert _last_tool_call(stack)["consent"] is True
