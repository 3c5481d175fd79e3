"""The short plain-text ``summary`` beside each tool's FHIR resources.

For the model: a few sentences it can relay or reason from without walking the
FHIR JSON. Summaries only restate what the result holds (names, codes, values,
dates); lists are cut after a few items and say how many there were.
"""

from __future__ import annotations

from typing import Any

from trustloop.tools.fhir_results import note_text_of

Json = dict[str, Any]
LISTED = 8
NOTE_PREVIEW_CHARS = 160


def roster(patients: list[Json]) -> str:
    if not patients:
        return "No patients are on your care team."
    shown = "; ".join(_person(p) for p in patients[:LISTED])
    count = _count(len(patients), "patient")
    return f"{count} on your care team: {shown}{_more(patients)}."


def matches(found: list[Json]) -> str:
    if not found:
        return "No patient on your care team matches that name."
    if len(found) == 1:
        return f"One patient matches: {_person(found[0])}."
    shown = "; ".join(_person(p) for p in found[:LISTED])
    return (
        f"{len(found)} patients match: {shown}{_more(found)}. "
        "Ask the clinician which one they mean."
    )


def chart(record: Json) -> str:
    patient = record["patient"]
    parts = [_patient(patient)]
    conditions = [_label(c.get("code")) for c in record["conditions"]]
    parts.append(f"Active conditions: {_listed(conditions)}.")
    medications = [_medication(m) for m in record["medications"]]
    parts.append(f"Current medications: {_listed(medications)}.")
    if record["encounters"]:
        parts.append(f"Last encounter: {_encounter(record['encounters'][0])}.")
    observations = [_observation(o) for o in record["observations"]]
    parts.append(f"Latest results: {_listed(observations)}.")
    parts.append(_notes(record["notes"]))
    return " ".join(parts)


def labs(observations: list[Json]) -> str:
    if not observations:
        return "No observations match."
    shown = "; ".join(_observation(o) for o in observations[:LISTED])
    count = _count(len(observations), "observation")
    return f"{count}, newest first: {shown}{_more(observations)}."


def note(document: Json) -> str:
    subject = document["subject"]["reference"]
    return (
        f"Note DocumentReference/{document['id']} was added to the chart of "
        f"{subject}: \u201c{_preview(note_text_of(document))}\u201d"
    )


def medication_change(new: Json, previous: Json) -> str:
    changes = []
    if new.get("status") != previous.get("status"):
        changes.append(f"status {previous.get('status')} \u2192 {new.get('status')}")
    if _dosage(new) != _dosage(previous):
        changes.append(
            f"dosage \u201c{_dosage(previous)}\u201d \u2192 \u201c{_dosage(new)}\u201d"
        )
    what = "; ".join(changes) or "no visible change"
    medication = _label(new.get("medicationCodeableConcept"))
    return (
        f"MedicationRequest/{new.get('id')} ({medication}) changed: {what}. "
        "The previous version is kept."
    )


# -- pieces ------------------------------------------------------------------------


def _person(entry: Json) -> str:
    born = f", born {entry['birth_date']}" if entry.get("birth_date") else ""
    restricted = ", restricted" if entry.get("sensitive") else ""
    return f"{entry.get('name')} (Patient/{entry.get('id')}{born}{restricted})"


def _patient(patient: Json) -> str:
    names = patient.get("name") or [{}]
    official = next((n for n in names if n.get("use") == "official"), names[0])
    name = " ".join([*official.get("given", []), official.get("family", "")]).strip()
    gender = patient.get("gender", "unknown gender")
    born = patient.get("birthDate", "unknown")
    return f"{name or 'Unnamed'}, {gender}, born {born} (Patient/{patient.get('id')})."


def _label(concept: object) -> str:
    if not isinstance(concept, dict):
        return "unnamed"
    if concept.get("text"):
        return str(concept["text"])
    codings = concept.get("coding") or []
    return next((str(c["display"]) for c in codings if c.get("display")), "unnamed")


def _medication(resource: Json) -> str:
    dosage = _dosage(resource)
    extra = f", {dosage}" if dosage else ""
    label = _label(resource.get("medicationCodeableConcept"))
    return f"{label} ({resource.get('status')}{extra})"


def _dosage(resource: Json) -> str:
    instructions = resource.get("dosageInstruction") or []
    texts = [str(d["text"]) for d in instructions if d.get("text")]
    return "; ".join(texts)


def _encounter(resource: Json) -> str:
    kinds = resource.get("type") or [{}]
    start = (resource.get("period") or {}).get("start", "")
    return f"{_label(kinds[0])} on {start[:10] or 'an unknown date'}"


def _observation(resource: Json) -> str:
    when = str(resource.get("effectiveDateTime") or resource.get("issued") or "")
    components = resource.get("component") or []
    if components and "valueQuantity" not in resource:
        value = ", ".join(
            f"{_label(c.get('code'))} {_value(c)}" for c in components[:4]
        )
    else:
        value = _value(resource)
    date = f" ({when[:10]})" if when else ""
    return f"{_label(resource.get('code'))}: {value}{date}"


def _value(element: Json) -> str:
    quantity = element.get("valueQuantity")
    if isinstance(quantity, dict):
        amount = quantity.get("value")
        shown = f"{amount:g}" if isinstance(amount, int | float) else str(amount)
        return f"{shown} {quantity.get('unit', '')}".strip()
    if "valueCodeableConcept" in element:
        return _label(element["valueCodeableConcept"])
    for key in ("valueString", "valueBoolean", "valueInteger", "valueDateTime"):
        if key in element:
            return str(element[key])
    return "no value"


def _notes(documents: list[Json]) -> str:
    if not documents:
        return "No notes."
    latest = documents[0]
    preview = _preview(note_text_of(latest))
    return (
        f"{_count(len(documents), 'note')}; the latest ({latest['date'][:10]}): "
        f"\u201c{preview}\u201d"
    )


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) <= NOTE_PREVIEW_CHARS:
        return flat
    return flat[: NOTE_PREVIEW_CHARS - 1] + "\u2026"


def _listed(items: list[str]) -> str:
    if not items:
        return "none"
    more = f" and {len(items) - LISTED} more" if len(items) > LISTED else ""
    return "; ".join(items[:LISTED]) + more


def _more(items: list[Json]) -> str:
    return f" and {len(items) - LISTED} more" if len(items) > LISTED else ""


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
