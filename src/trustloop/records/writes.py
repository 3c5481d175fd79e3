"""The two writes a tool may make, run as the ephemeral role (docs/contracts.md, "Writes").

The database decides, not this module: the role's grant row names one patient,
one action and the SHA-256 of the one change the clinician consented to
(:mod:`trustloop.records.changes`). ``clinical.notes``' trigger and
``clinical.change_medication`` take the author and the OBO ``jti`` from that row
and refuse anything else with SQLSTATE 42501 (``psycopg.errors.
InsufficientPrivilege``), which the rhythm reports as ``access_denied: the
database refused the write``.

Here the inputs are only put in the canonical form whose digest was consented
to: a note's text and a dosage NFC-normalised and stripped, an empty value
meaning "unchanged".
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from trustloop.records import changes

if TYPE_CHECKING:
    import psycopg

_INSERT_NOTE = """
    INSERT INTO clinical.notes (patient_id, text)
    VALUES (%s, %s)
    RETURNING id, patient_id, author_sub, obo_jti, text, created_at
"""

_CHANGE_MEDICATION = "SELECT clinical.change_medication(%s, %s, %s)"


def add_note(
    conn: psycopg.Connection[Any], patient_id: str, text: str
) -> dict[str, Any]:
    """Add a note to ``patient_id``'s chart; answer it as stored.

    ``id``, ``patient_id``, ``author_sub``, ``obo_jti``, ``text``, ``created_at``
    (ISO 8601). The author and ``jti`` are the grant row's, set by the database.
    """
    row = conn.execute(_INSERT_NOTE, (patient_id, changes.note_text(text))).fetchone()
    if row is None:  # RETURNING always answers the inserted row
        raise RuntimeError("the note insert returned no row")
    note_id, pid, author, jti, stored, created_at = row
    return {
        "id": note_id,
        "patient_id": pid,
        "author_sub": author,
        "obo_jti": jti,
        "text": stored,
        "created_at": _iso(created_at),
    }


def change_medication(
    conn: psycopg.Connection[Any],
    medication_request_id: str,
    status: str | None,
    dosage: str | None,
) -> dict[str, Any]:
    """Change one MedicationRequest's status and/or dosage text; keep the old one.

    Answers ``medication_request`` (the new FHIR resource), ``previous`` (the old
    one), ``change_id``, ``changed_by`` and ``obo_jti`` (from the grant row).
    """
    dosage_text = changes.note_text(dosage) if dosage else None
    row = conn.execute(
        _CHANGE_MEDICATION, (medication_request_id, status or None, dosage_text)
    ).fetchone()
    if row is None or not isinstance(row[0], dict):
        raise RuntimeError("change_medication returned no change")
    result: dict[str, Any] = row[0]
    return {
        "medication_request": result["medication_request"],
        "previous": result["previous"],
        "change_id": result["change_id"],
        "changed_by": result["changed_by"],
        "obo_jti": result["obo_jti"],
    }


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
