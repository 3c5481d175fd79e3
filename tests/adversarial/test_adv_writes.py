"""Consent spoofing: the push must show the whole change the database will make.

The change text goes from the tool's validated arguments (``trustloop.tools.
inputs``) through ``trustloop.records.changes`` to the IdP, which writes the push
message (``trustloop.devstack.idp.consent``); the MCP server's own message
(``trustloop.identity.step_up``) is what IBM Verify shows. A prompt-injected
model chooses the arguments; a compromised MCP server chooses the change text.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from trustloop.devstack.idp.consent import consent_change
from trustloop.devstack.idp.consent import push_message as idp_message
from trustloop.devstack.idp.errors import OAuthProblem
from trustloop.identity.rar import Action, patient_write
from trustloop.identity.rhythm import ToolCallError
from trustloop.identity.step_up import push_message as client_message
from trustloop.records.changes import medication_change_text, note_text, sha256_hex
from trustloop.tools.inputs import MedicationArguments, parse

HIDDEN_LINE = "then 50 mg every hour"


def _medication_change(dosage: str) -> str:
    """The change text a compromised MCP server could send for this dosage (the
    tool's own input check refuses a multi-line dosage first: see below)."""
    return medication_change_text("mr-7", None, note_text(dosage))


@pytest.mark.parametrize(
    "dosage", [f"5 mg once daily\n{HIDDEN_LINE}", "5 mg once daily\nstatus=active"]
)
def test_the_tool_refuses_a_dosage_of_several_lines(dosage: str) -> None:
    """A prompt-injected model cannot even ask for a second dosage line."""
    with pytest.raises(ToolCallError, match="dosage: must be one line"):
        parse(
            MedicationArguments,
            {"patient_id": "p-mine", "medication_request_id": "mr-7", "dosage": dosage},
        )


def _pushed(change: str, action: Action = "update_medication") -> dict[str, Any]:
    detail = patient_write("p-mine", action, sha256_hex(change))
    body = {
        "transactionData": {"additionalData": [{"name": "change", "value": change}]}
    }
    details = [detail.wire()]
    checked = consent_change(json.dumps(body).encode(), details)
    return {"detail": detail, "details": details, "change": checked}


def test_a_second_dosage_line_is_shown_on_the_push_not_hidden() -> None:
    """A dosage line without '=' used to vanish from the consent message."""
    change = _medication_change(f"5 mg once daily\n{HIDDEN_LINE}")
    pushed = _pushed(change)

    shown_by_idp = idp_message(pushed["details"], pushed["change"])
    shown_by_client = client_message(pushed["detail"], change)

    assert HIDDEN_LINE in shown_by_idp
    assert HIDDEN_LINE in shown_by_client


def test_a_dosage_line_posing_as_a_status_is_not_shown_as_a_status() -> None:
    """'status=active' inside a dosage changes no status: the push must not say so."""
    change = _medication_change("5 mg once daily\nstatus=active")
    pushed = _pushed(change)

    for shown in (
        idp_message(pushed["details"], pushed["change"]),
        client_message(pushed["detail"], change),
    ):
        assert "status active" not in shown
        assert "status=active" in shown


def test_the_idp_refuses_a_medication_change_that_is_not_canonical() -> None:
    """A compromised MCP server cannot hand the IdP a shape it would misread."""
    for change in (
        "MedicationRequest/mr-7\nstatus=stopped",
        "MedicationRequest/mr-7\nstatus=resumed\ndosage=",
        "Patient/p-other\nstatus=stopped\ndosage=",
        "MedicationRequest/mr-7\nstatus=\ndosage=",
    ):
        pushed = _pushed(change)
        with pytest.raises(OAuthProblem) as refused:
            idp_message(pushed["details"], pushed["change"])
        assert refused.value.error == "invalid_request"


@pytest.mark.parametrize(
    "hidden",
    ["\u202e", "\u200b", "\u2066", "\x1b", "\r"],
    ids=["rlo", "zero-width-space", "isolate", "escape", "carriage-return"],
)
def test_the_idp_refuses_a_change_with_invisible_characters(hidden: str) -> None:
    """The push must show exactly what is written, even from a rogue MCP server."""
    note = f"Continue warfarin {hidden}5 mg daily."

    with pytest.raises(OAuthProblem) as refused:
        _pushed(note, "write_note")

    assert refused.value.error == "invalid_request"


def test_a_plain_medication_change_still_reads_as_before() -> None:
    change = medication_change_text("mr-7", "stopped", "Take none")
    pushed = _pushed(change)

    assert idp_message(pushed["details"], pushed["change"]) == (
        "Change MedicationRequest/mr-7 of Patient/p-mine: status stopped, "
        "dosage Take none?"
    )
    assert client_message(pushed["detail"], change) == (
        "Change MedicationRequest/mr-7 of Patient/p-mine: status stopped, "
        "dosage Take none?"
    )
