"""The offline planner's final answers, written from contract-shaped tool results.

The roster is ``{"patients": [{"id", "name", "birth_date", "gender", "sensitive"}]}``
(``find_patient``: the same objects under ``matches``); a chart is ``{"patient":
<FHIR Patient>, "conditions", "medications", "encounters", "observations", "notes"}``;
lab results are ``{"observations": [<FHIR Observation>, newest first]}``
(docs/contracts.md). Only what the tool returned is written: nothing is inferred.
Answers after a write are in :mod:`trustloop.agent.writes`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustloop.agent.intents import Labs

HELP = (
    'I can list the patients on your care team (try "list my patients"), find one '
    '("find <patient name>"), show one patient\'s chart ("show me <patient name>\'s '
    'chart" or a Patient/<id>) or lab results ("what were <patient name>\'s last '
    'HbA1c results?", "labs for <patient name> since 2020-01-01"), add a note '
    '("add a note to <patient name>\'s chart: <text>") and change a medication '
    '("stop her <medication>", "put his <medication> on hold", "change her '
    '<medication> dose to <dosage>"). "her", "his" and "their" mean the last patient '
    "of this conversation. I can't answer other questions."
)

WHICH_PATIENT = (
    'Which patient do you mean? Name the patient ("show me <patient name>\'s chart") '
    "or give a Patient/<id>; I haven't talked about a patient in this conversation."
)

# The IdP decides: opening a restricted chart sends a push to the clinician.
RESTRICTED_NOTE = (
    "Restricted charts need your approval on your device (step-up) when I open them."
)

_ACTIVE_CONDITION = {"active", "recurrence", "relapse"}


def not_found(name: str) -> str:
    return f"I couldn't find a patient named {name} on your care team."


def ambiguous(name: str, matches: Iterable[dict[str, Any]]) -> str:
    lines = [f"More than one patient on your care team matches {name}:"]
    lines += [
        f"- {_roster_line(entry)} (Patient/{entry.get('id')})" for entry in matches
    ]
    lines.append(
        "Which one do you mean? Ask again with the full name or the patient id, e.g. "
        '"show me Patient/<id>".'
    )
    return "\n".join(lines)


def found(name: str, matches: list[dict[str, Any]]) -> str:
    """``find_patient``'s matches: one patient, a choice, or none."""
    if not matches:
        return not_found(name)
    if len(matches) == 1:
        entry = matches[0]
        return f"Found {_roster_line(entry)} (Patient/{entry.get('id')})."
    lines = [f"{len(matches)} patients on your care team match {name}:"]
    lines += [
        f"- {_roster_line(entry)} (Patient/{entry.get('id')})" for entry in matches
    ]
    lines.append("Which one do you mean?")
    return "\n".join(lines)


def refused(text: str, *, write: bool = False) -> str:
    """A refusal relayed plainly, with the records service's own words."""
    detail = text.strip() or "the request was refused"
    declined = "declined" in detail
    if write and declined:
        return (
            f"You declined the change on your device, so nothing was changed "
            f"({detail})."
        )
    if declined:
        return (
            f"You declined the request on your device, so I can't show that ({detail})."
        )
    if write:
        return f"Nothing was changed. The records service said: {detail}"
    return f"I can't show that. The records service said: {detail}"


def step_up_notice(patient: str) -> str:
    return f"{patient}'s chart is restricted: approve the request on your device.\n"


def labs(data: dict[str, Any], intent: Labs, patient: str) -> str:
    """Observations newest first, with date and value; or that there are none."""
    label = intent.query.label
    label = f"{label} results" if intent.query.code else label
    window = _window(intent.since, intent.until)
    observations = _items(data, "observations")
    if not observations:
        return f"No {label} on record for {patient}{window}."

    lines = [f"{label[:1].upper()}{label[1:]} for {patient}{window}, newest first:"]
    for observation in observations:
        when = short_date(
            observation.get("effectiveDateTime") or observation.get("issued")
        )
        value = _observation_value(observation)
        name = "" if intent.query.code else f"{concept(observation.get('code'))}: "
        lines.append(f"- {when or 'undated'}: {name}{value}")
    return "\n".join(lines)


def unreadable(tool: str) -> str:
    return f"The {tool} tool returned a result I couldn't read, so I can't answer."


def unavailable(tool: str) -> str:
    return f"The {tool} tool is not available right now, so I can't answer that."


def roster(data: dict[str, Any]) -> str:
    """A list of the clinician's patients, restricted ones marked."""
    patients = [p for p in data.get("patients", []) if isinstance(p, dict)]
    if not patients:
        return "You have no patients on your care team."

    noun = "patient" if len(patients) == 1 else "patients"
    lines = [f"You have {len(patients)} {noun} on your care team:"]
    lines += [f"- {_roster_line(entry)}" for entry in patients]
    if any(entry.get("sensitive") for entry in patients):
        lines.append(RESTRICTED_NOTE)
    return "\n".join(lines)


def chart(data: dict[str, Any]) -> str:
    """Name, birth date, gender, active conditions, medications, latest observations."""
    patient = data.get("patient")
    patient = patient if isinstance(patient, dict) else {}
    lines = [
        f"Chart for {patient_name(patient)} (Patient/{patient.get('id', '?')})",
        f"Born: {patient.get('birthDate') or 'unknown'}",
        f"Gender: {patient.get('gender') or 'unknown'}",
    ]

    conditions = [_condition_line(c) for c in _items(data, "conditions") if _active(c)]
    medications = [
        _medication_line(m) for m in _items(data, "medications") if _current(m)
    ]
    observations = [_observation_line(o) for o in _items(data, "observations")]
    lines += _section("Active conditions", conditions)
    lines += _section("Current medications", medications)
    lines += _section("Latest observations", observations)
    if "encounters" in data:
        encounters = [_encounter_line(e) for e in _items(data, "encounters")]
        lines += _section("Recent encounters", encounters)
    if "notes" in data:
        lines += _section("Notes", [_note_line(n) for n in _items(data, "notes")])
    return "\n".join(lines)


def patient_name(patient: dict[str, Any]) -> str:
    """A FHIR Patient's display name: the official ``HumanName`` when there is one."""
    names = [n for n in patient.get("name", []) if isinstance(n, dict)]
    if not names:
        return "Unknown name"

    official = next((n for n in names if n.get("use") == "official"), names[0])
    if isinstance(official.get("text"), str):
        return str(official["text"])
    parts = [*official.get("given", []), official.get("family", "")]
    return " ".join(str(p) for p in parts if p) or "Unknown name"


def _roster_line(entry: dict[str, Any]) -> str:
    line = f"{entry.get('name', 'Unknown name')}, born {entry.get('birth_date', '?')}"
    return f"{line} (restricted)" if entry.get("sensitive") else line


def _section(title: str, lines: list[str]) -> list[str]:
    body = [f"- {line}" for line in lines] or ["- none recorded"]
    return ["", f"{title}:", *body]


def _items(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _active(condition: dict[str, Any]) -> bool:
    status = _code(condition.get("clinicalStatus"))
    return status is None or status in _ACTIVE_CONDITION


def _current(medication: dict[str, Any]) -> bool:
    status = medication.get("status")
    return status is None or status in ("active", "on-hold")


def _condition_line(condition: dict[str, Any]) -> str:
    text = _concept(condition.get("code"))
    onset = _date(condition.get("onsetDateTime"))
    return f"{text} (since {onset})" if onset else text


def _medication_line(medication: dict[str, Any]) -> str:
    text = _concept(medication.get("medicationCodeableConcept"))
    authored = _date(medication.get("authoredOn"))
    line = f"{text} (prescribed {authored})" if authored else text
    if medication.get("status") == "on-hold":
        line += ", on hold"
    return (
        f"{line}, MedicationRequest/{medication['id']}" if "id" in medication else line
    )


def _encounter_line(encounter: dict[str, Any]) -> str:
    kinds = encounter.get("type")
    text = _concept(kinds[0]) if isinstance(kinds, list) and kinds else "Encounter"
    period = encounter.get("period")
    start = _date(period.get("start")) if isinstance(period, dict) else None
    return f"{text} ({start})" if start else text


def _note_line(note: dict[str, Any]) -> str:
    when = _date(note.get("date")) or "undated"
    authors = note.get("author")
    author = (
        authors[0].get("reference")
        if isinstance(authors, list) and authors and isinstance(authors[0], dict)
        else None
    )
    by = f" by {author}" if isinstance(author, str) else ""
    return f"{when}{by}: {note_text(note) or '(no text)'}"


def _window(since: str | None, until: str | None) -> str:
    if since and until:
        return f" from {since} to {until}"
    if since:
        return f" since {since}"
    return f" until {until}" if until else ""


def _observation_line(observation: dict[str, Any]) -> str:
    text = _concept(observation.get("code"))
    value = _observation_value(observation)
    when = _date(observation.get("effectiveDateTime") or observation.get("issued"))
    line = f"{text}: {value}"
    return f"{line} ({when})" if when else line


def _observation_value(observation: dict[str, Any]) -> str:
    if "valueQuantity" in observation:
        return _quantity(observation["valueQuantity"])
    if "valueCodeableConcept" in observation:
        return _concept(observation["valueCodeableConcept"])
    if "valueString" in observation:
        return str(observation["valueString"])

    components = _items(observation, "component")
    if components:
        parts = [
            f"{_concept(c.get('code'))} {_observation_value(c)}" for c in components
        ]
        return ", ".join(parts)
    return "no value"


def _quantity(quantity: object) -> str:
    if not isinstance(quantity, dict):
        return "no value"

    value = quantity.get("value")
    if isinstance(value, float):
        shown = f"{value:.2f}".rstrip("0").rstrip(".")
    else:
        shown = str(value)
    unit = quantity.get("unit") or quantity.get("code")
    return f"{shown} {unit}" if unit else shown


def concept(concept: object) -> str:
    """A CodeableConcept's text, else its first coding's display."""
    return _concept(concept)


def short_date(value: object) -> str | None:
    """The date part of a FHIR dateTime."""
    return _date(value)


def _concept(concept: object) -> str:
    if not isinstance(concept, dict):
        return "Unnamed"
    if isinstance(concept.get("text"), str):
        return str(concept["text"])
    for coding in concept.get("coding", []):
        if isinstance(coding, dict) and isinstance(coding.get("display"), str):
            return str(coding["display"])
    return "Unnamed"


def _code(concept: object) -> str | None:
    if not isinstance(concept, dict):
        return None
    for coding in concept.get("coding", []):
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            return str(coding["code"])
    return None


def _date(value: object) -> str | None:
    return value[:10] if isinstance(value, str) and value else None


def note_text(note: dict[str, Any]) -> str | None:
    """A DocumentReference's text: a text/plain attachment, else its description."""
    for content in (
        note.get("content", []) if isinstance(note.get("content"), list) else []
    ):
        attachment = content.get("attachment") if isinstance(content, dict) else None
        if not isinstance(attachment, dict) or not isinstance(
            attachment.get("data"), str
        ):
            continue
        try:
            return base64.b64decode(attachment["data"], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            continue
    description = note.get("description")
    return description if isinstance(description, str) else None
