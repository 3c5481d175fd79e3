"""The offline planner's final answers, written from contract-shaped tool results.

The roster is ``{"patients": [{"id", "name", "birth_date", "gender", "sensitive"}]}``;
a chart is ``{"patient": <FHIR Patient>, "conditions": [<FHIR Condition>],
"medications": [<FHIR MedicationRequest>], "observations": [<FHIR Observation>]}``
(docs/contracts.md). Only what the tool returned is written: nothing is inferred.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

HELP = (
    'I can list the patients on your care team (try "list my patients") or show '
    "one patient's chart (try \"show me <patient name>'s chart\" or give a "
    "Patient/<id>). I can't answer other questions yet."
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
    lines.append('Ask again with the patient id, e.g. "show me Patient/<id>".')
    return "\n".join(lines)


def refused(text: str) -> str:
    detail = text.strip() or "the request was refused"
    return f"I can't show that. The records service said: {detail}"


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
    return status is None or status == "active"


def _condition_line(condition: dict[str, Any]) -> str:
    text = _concept(condition.get("code"))
    onset = _date(condition.get("onsetDateTime"))
    return f"{text} (since {onset})" if onset else text


def _medication_line(medication: dict[str, Any]) -> str:
    text = _concept(medication.get("medicationCodeableConcept"))
    authored = _date(medication.get("authoredOn"))
    return f"{text} (prescribed {authored})" if authored else text


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
