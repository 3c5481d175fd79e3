"""``write_clinical_note``: a note on one chart, after the clinician's consent.

docs/contracts.md, "Writes": the note's canonical text (NFC, stripped) is the
change; its SHA-256 goes into the ``write_note`` detail, the text itself to the
consent push, where the clinician sees exactly this note. The database takes
the author and the OBO ``jti`` from the grant row and refuses any other text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trustloop.identity.rar import patient_write
from trustloop.records import writes
from trustloop.records.changes import note_text, sha256_hex
from trustloop.tools import summaries
from trustloop.tools.fhir_results import document_reference

if TYPE_CHECKING:
    from trustloop.identity.step_up import Progress
    from trustloop.identity.types import Connection
    from trustloop.tools.caller import Caller
    from trustloop.tools.inputs import NoteArguments
    from trustloop.tools.results import Payload


async def write_clinical_note(
    caller: Caller, arguments: NoteArguments, progress: Progress | None = None
) -> Payload:
    """``note`` (the stored note as a DocumentReference), ``summary``, ``obo_jti``.

    A declined or unanswered consent push writes nothing (``access_denied``).
    """
    patient_id = arguments.patient_id
    text = note_text(arguments.text)
    detail = patient_write(patient_id, "write_note", sha256_hex(text))
    call = caller.rhythm.call(
        caller.token(),
        detail,
        tool="write_clinical_note",
        progress=progress,
        change_text=text,
    )
    async with call as granted:

        def add(conn: Connection) -> dict[str, Any]:
            # Validated before the commit: a note that cannot be returned as
            # FHIR is rolled back rather than written and reported as failed.
            document = document_reference(writes.add_note(conn, patient_id, text))
            conn.commit()
            return document

        note = await granted.run(add)

    return {"note": note, "summary": summaries.note(note), "obo_jti": granted.jti}
