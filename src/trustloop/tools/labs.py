"""``get_lab_results``: a patient's observations by LOINC code, category, dates.

Runs on the ``patient_record`` read detail for that patient (a restricted
patient needs the step-up, as for the chart). ``since`` and ``until`` are whole
days, both included; newest first, at most ``limit``.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from trustloop.identity.rar import patient_read
from trustloop.records import queries
from trustloop.tools import summaries
from trustloop.tools.fhir_results import all_validated

if TYPE_CHECKING:
    from trustloop.identity.step_up import Progress
    from trustloop.tools.caller import Caller
    from trustloop.tools.inputs import LabArguments
    from trustloop.tools.results import Payload


async def get_lab_results(
    caller: Caller, arguments: LabArguments, progress: Progress | None = None
) -> Payload:
    """``observations`` (validated FHIR Observations), ``summary``, ``obo_jti``."""
    patient_id = arguments.patient_id
    wanted = queries.ObservationFilter(
        code=arguments.code,
        category=arguments.category,
        since=_day(arguments.since),
        until=_day(arguments.until),
        limit=arguments.limit,
    )
    call = caller.rhythm.call(
        caller.token(),
        patient_read(patient_id),
        tool="get_lab_results",
        progress=progress,
    )
    async with call as granted:
        rows = await granted.run(
            lambda conn: queries.observations(conn, patient_id, wanted)
        )

    observations = all_validated(rows, "Observation")
    return {
        "observations": observations,
        "summary": summaries.labs(observations),
        "obo_jti": granted.jti,
    }


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value is not None else None
