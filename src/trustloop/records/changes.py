"""The exact change a write may make, and its SHA-256 (docs/contracts.md, "Writes").

A write's authorization detail names ``change_sha256``; the clinician's consent
push shows the change itself (the IdP checks it against the digest), the OBO
token carries the digest, and the database recomputes it from what is actually
written and refuses anything else. So the one change the clinician approved is
the only change the call can make, whatever the MCP server or the model does.

The canonical texts (SQL computes the same in ``clinical.change_digest``):

- a note: the note text, NFC-normalised and stripped, as stored;
- a medication change: ``MedicationRequest/<id>``, ``status=<new status>``,
  ``dosage=<new dosage text>`` on three lines (``\\n``), a value left unchanged
  written as empty.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Literal, get_args

# FHIR R4 MedicationRequest.status.
MedicationStatus = Literal[
    "active",
    "on-hold",
    "cancelled",
    "completed",
    "entered-in-error",
    "stopped",
    "draft",
    "unknown",
]
MEDICATION_STATUSES: tuple[str, ...] = get_args(MedicationStatus)


def note_text(raw: str) -> str:
    """The note text as it will be stored: NFC-normalised, surrounding space gone."""
    return unicodedata.normalize("NFC", raw).strip()


def medication_change_text(
    medication_request_id: str, status: str | None, dosage: str | None
) -> str:
    """The canonical text of one medication change (the consent push shows it)."""
    return (
        f"MedicationRequest/{medication_request_id}\n"
        f"status={status or ''}\n"
        f"dosage={note_text(dosage) if dosage else ''}"
    )


def sha256_hex(change_text: str) -> str:
    """The ``change_sha256`` of a canonical change text (UTF-8)."""
    return hashlib.sha256(change_text.encode("utf-8")).hexdigest()
