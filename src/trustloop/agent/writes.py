"""The offline planner's side of writes: which medication, what to say before and after.

A write waits for the clinician's consent on their device (a push that shows the
exact change); the planner says so before the call and, after it, reports what was
written from the tool's result: the note's ``DocumentReference`` id, or the
medication's new status or dosage beside the previous one, which the database keeps
(docs/contracts.md, "Writes"). Only what the tool returned is reported.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from trustloop.agent.answers import concept, note_text, short_date
from trustloop.agent.names import name_tokens

if TYPE_CHECKING:
    from trustloop.agent.intents import ChangeMedication

_MED_REF = re.compile(r"^MedicationRequest/(?P<id>[A-Za-z0-9.-]{1,64})$")
# Statuses a change may start from (FHIR R4 MedicationRequest.status).
_CHANGEABLE = {"active", "on-hold", "draft"}
_RESUMABLE = {"on-hold"}


def consent_note(patient: str) -> str:
    return (
        f"Adding a note to {patient}'s chart: approve the change on your device "
        "(the push shows the note).\n"
    )


def consent_medication(
    medication: dict[str, Any], intent: ChangeMedication, patient: str
) -> str:
    return (
        f"Changing {concept(medication.get('medicationCodeableConcept'))} for "
        f"{patient} ({_change_words(intent)}): if your role may change "
        "medications, approve the change on your device.\n"
    )


def choose_medication(
    medications: object, intent: ChangeMedication, patient: str
) -> dict[str, Any] | str:
    """The one MedicationRequest the clinician named, or what to tell them."""
    items = (
        [m for m in medications if isinstance(m, dict)]
        if isinstance(medications, list)
        else []
    )
    named = _named(items, intent.drug)
    if not named:
        return f"I couldn't find {intent.drug} among {patient}'s medications."

    allowed = _RESUMABLE if intent.status == "active" else _CHANGEABLE
    candidates = [m for m in named if m.get("status") in allowed]
    if not candidates:
        states = ", ".join(sorted({str(m.get("status")) for m in named}))
        return (
            f"{_label(named[0])} is not a medication I can change that way "
            f"for {patient} (its status: {states}); nothing was changed."
        )
    if len(candidates) > 1:
        lines = [f"More than one of {patient}'s medications matches {intent.drug}:"]
        lines += [
            f"- {_label(m)} ({m.get('status')}, MedicationRequest/{m.get('id')})"
            for m in candidates
        ]
        lines.append('Say which, e.g. "stop her MedicationRequest/<id>".')
        return "\n".join(lines)
    return candidates[0]


def note_written(data: dict[str, Any], patient: str) -> str:
    """The note's id, date and text, as the tool reported them."""
    note = data.get("note")
    note = note if isinstance(note, dict) else {}
    lines = [
        f"Added a note to {patient}'s chart (DocumentReference/{note.get('id', '?')}), "
        "with your approval."
    ]
    when = short_date(note.get("date"))
    if when:
        lines.append(f"Date: {when}")
    text = note_text(note)
    if text:
        lines.append(f"Note: {text}")
    return "\n".join(lines)


def medication_changed(data: dict[str, Any], patient: str) -> str:
    """The medication's new status or dosage beside the previous one."""
    new = data.get("medication_request")
    new = new if isinstance(new, dict) else {}
    old = data.get("previous")
    old = old if isinstance(old, dict) else {}
    lines = [
        f"Changed {_label(new)} for {patient} "
        f"(MedicationRequest/{new.get('id', '?')}), with your approval:"
    ]
    if new.get("status") != old.get("status"):
        lines.append(f"- status: {old.get('status', '?')} -> {new.get('status', '?')}")
    if dosage_text(new) != dosage_text(old):
        lines.append(
            f"- dosage: {dosage_text(old) or 'none'} -> {dosage_text(new) or 'none'}"
        )
    lines.append("The previous version is kept in the medication's history.")
    return "\n".join(lines)


def dosage_text(medication: dict[str, Any]) -> str | None:
    dosages = medication.get("dosageInstruction")
    if not isinstance(dosages, list):
        return None
    texts = [
        d["text"]
        for d in dosages
        if isinstance(d, dict) and isinstance(d.get("text"), str)
    ]
    return "; ".join(texts) or None


def _named(items: list[dict[str, Any]], drug: str) -> list[dict[str, Any]]:
    reference = _MED_REF.match(drug)
    if reference:
        return [m for m in items if m.get("id") == reference.group("id")]
    wanted = name_tokens(drug)
    return [m for m in items if wanted and _words_start(name_tokens(_label(m)), wanted)]


def _words_start(words: list[str], wanted: list[str]) -> bool:
    return all(any(w.startswith(token) for w in words) for token in wanted)


def _label(medication: dict[str, Any]) -> str:
    return concept(medication.get("medicationCodeableConcept"))


def _change_words(intent: ChangeMedication) -> str:
    parts = []
    if intent.status:
        parts.append(f"status {intent.status}")
    if intent.dosage:
        parts.append(f"dosage {intent.dosage}")
    return ", ".join(parts)
