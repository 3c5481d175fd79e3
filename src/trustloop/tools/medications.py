"""``update_medication``: one MedicationRequest's status or dosage, after consent.

docs/contracts.md, "Writes": the change text ``MedicationRequest/<id>``,
``status=<new>``, ``dosage=<new>`` (empty when unchanged) is what the clinician
approves on the push, and its SHA-256 is the ``update_medication`` detail's.
``clinical.change_medication`` keeps the previous resource as history and
records the author from the grant row. The IdP's policy lets physicians only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trustloop.identity.rar import patient_write
from trustloop.records import writes
from trustloop.records.changes import medication_change_text, note_text, sha256_hex
from trustloop.tools import summaries
from trustloop.tools.fhir_results import validated

if TYPE_CHECKING:
    from trustloop.identity.step_up import Progress
    from trustloop.identity.types import Connection
    from trustloop.tools.caller import Caller
    from trustloop.tools.inputs import MedicationArguments
    from trustloop.tools.results import Payload


async def update_medication(
    caller: Caller, arguments: MedicationArguments, progress: Progress | None = None
) -> Payload:
    """``medication_request`` (new), ``previous`` (old), ``summary``, ``obo_jti``."""
    request_id = arguments.medication_request_id
    status = arguments.status
    dosage = note_text(arguments.dosage) if arguments.dosage is not None else None
    change = medication_change_text(request_id, status, dosage)
    detail = patient_write(
        arguments.patient_id, "update_medication", sha256_hex(change)
    )
    call = caller.rhythm.call(
        caller.token(),
        detail,
        tool="update_medication",
        progress=progress,
        change_text=change,
    )
    async with call as granted:

        def apply(conn: Connection) -> tuple[dict[str, Any], dict[str, Any]]:
            # Validated before the commit, as for notes: no half-reported write.
            changed = writes.change_medication(conn, request_id, status, dosage)
            new = validated(changed["medication_request"], "MedicationRequest")
            previous = validated(changed["previous"], "MedicationRequest")
            conn.commit()
            return new, previous

        new, previous = await granted.run(apply)

    return {
        "medication_request": new,
        "previous": previous,
        "summary": summaries.medication_change(new, previous),
        "obo_jti": granted.jti,
    }
