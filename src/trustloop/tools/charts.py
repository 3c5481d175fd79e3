"""``read_patient_record``: one patient's chart, as validated FHIR R4 resources.

Runs on the ``patient_record`` read detail for that one patient. A restricted
patient needs the clinician's step-up: ``progress`` hears "approve on your
device" while the push waits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trustloop.identity.rar import patient_read
from trustloop.identity.rhythm import ToolCallError
from trustloop.records import queries
from trustloop.tools import summaries
from trustloop.tools.fhir_results import all_validated, document_reference, validated

if TYPE_CHECKING:
    from trustloop.identity.step_up import Progress
    from trustloop.tools.caller import Caller
    from trustloop.tools.inputs import PatientArguments
    from trustloop.tools.results import Payload


async def read_patient_record(
    caller: Caller, arguments: PatientArguments, progress: Progress | None = None
) -> Payload:
    """``patient``, ``conditions``, ``medications``, ``encounters``,
    ``observations``, ``notes`` (DocumentReference), ``summary``, ``obo_jti``."""
    patient_id = arguments.patient_id
    detail = patient_read(patient_id)
    call = caller.rhythm.call(
        caller.token(), detail, tool="read_patient_record", progress=progress
    )
    async with call as granted:
        chart = await granted.run(lambda conn: queries.read_chart(conn, patient_id))
        if chart is None:
            raise ToolCallError("not_found", f"no record for {detail.identifier}")

    record = fhir_chart(chart)
    return {**record, "summary": summaries.chart(record), "obo_jti": granted.jti}


def fhir_chart(chart: dict[str, Any]) -> dict[str, Any]:
    """The rows of :func:`queries.read_chart`, every resource R4B-validated."""
    return {
        "patient": validated(chart["patient"], "Patient"),
        "conditions": all_validated(chart["conditions"], "Condition"),
        "medications": all_validated(chart["medications"], "MedicationRequest"),
        "encounters": all_validated(chart["encounters"], "Encounter"),
        "observations": all_validated(chart["observations"], "Observation"),
        "notes": [document_reference(note) for note in chart["notes"]],
    }
