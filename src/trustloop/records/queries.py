"""The SQL the MCP tools run as the ephemeral role (DESIGN.md, step 4).

Plain parameterized SELECTs over ``clinical``: row-level security decides what the
role may see, and every chart query also filters by the patient id asked for. No
schema change, no privilege beyond what the grant row gives. Results are
JSON-ready: FHIR resources as imported, dates as ISO strings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

RECENT_MEDICATIONS = 5
RECENT_ENCOUNTERS = 5
MAX_OBSERVATIONS = 20
MAX_NOTES = 10
OBSERVATION_CATEGORIES = ("vital-signs", "laboratory")

_ROSTER = """
    SELECT id, name, birth_date, gender, sensitive
      FROM clinical.patients
     ORDER BY name, id
"""

_PATIENT = "SELECT clinical.patient_resource(%s)"

_CONDITIONS = """
    SELECT resource
      FROM clinical.conditions
     WHERE patient_id = %s
       AND (clinical_status = 'active' OR abatement IS NULL)
     ORDER BY onset DESC NULLS LAST, id
"""

_ACTIVE_MEDICATIONS = """
    SELECT resource
      FROM clinical.medication_requests
     WHERE patient_id = %s AND status IN ('active', 'on-hold')
     ORDER BY authored_on DESC NULLS LAST, id
"""

_RECENT_MEDICATIONS = """
    SELECT resource
      FROM clinical.medication_requests
     WHERE patient_id = %s
     ORDER BY authored_on DESC NULLS LAST, id
     LIMIT %s
"""

_LATEST_OBSERVATIONS = """
    SELECT resource
      FROM (
        SELECT DISTINCT ON (code) code, effective, resource
          FROM clinical.observations
         WHERE patient_id = %s AND category = ANY(%s)
         ORDER BY code, effective DESC NULLS LAST
      ) AS latest
     ORDER BY effective DESC NULLS LAST, code
     LIMIT %s
"""


_RECENT_ENCOUNTERS = """
    SELECT resource
      FROM clinical.encounters
     WHERE patient_id = %s
     ORDER BY period_start DESC NULLS LAST, id
     LIMIT %s
"""

_NOTES = """
    SELECT id, patient_id, author_sub, obo_jti, text, created_at
      FROM clinical.notes
     WHERE patient_id = %s
     ORDER BY created_at DESC, id
     LIMIT %s
"""

# Optional filters are NULL when not asked for; ``until`` is inclusive of its day.
_OBSERVATIONS = """
    SELECT resource
      FROM clinical.observations
     WHERE patient_id = %(patient_id)s
       AND (%(code)s::text IS NULL OR code = %(code)s)
       AND (%(category)s::text IS NULL OR category = %(category)s)
       AND (%(since)s::date IS NULL OR effective >= %(since)s::date)
       AND (%(until)s::date IS NULL OR effective < %(until)s::date + 1)
     ORDER BY effective DESC NULLS LAST, id
     LIMIT %(limit)s
"""


@dataclass(frozen=True)
class ObservationFilter:
    """What ``get_lab_results`` asks for; ``None`` leaves a filter out."""

    code: str | None = None
    category: str | None = None
    since: date | None = None
    until: date | None = None
    limit: int = MAX_OBSERVATIONS


def list_roster(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """The patients the role may list: ``id, name, birth_date, gender, sensitive``."""
    rows = conn.execute(_ROSTER).fetchall()
    return [
        {
            "id": pid,
            "name": name,
            "birth_date": birth_date.isoformat() if birth_date else None,
            "gender": gender,
            "sensitive": sensitive,
        }
        for pid, name, birth_date, gender, sensitive in rows
    ]


def read_chart(conn: psycopg.Connection[Any], patient_id: str) -> dict[str, Any] | None:
    """The patient's chart, or None when the role may not read that patient.

    ``patient``: the FHIR Patient; ``conditions``: active ones (clinical status
    active, or no abatement); ``medications``: current MedicationRequests
    (active or on hold), or the most recent few if none is current;
    ``encounters``: the most recent few; ``observations``: the latest vital sign
    or lab result per LOINC code, newest first, at most ``MAX_OBSERVATIONS``;
    ``notes``: rows of ``clinical.notes`` (see :func:`notes`), newest first.
    """
    # One round trip: the statements go out in a pipeline (libpq 14+) and their
    # results are read after its sync. Each runs as before, under the same RLS.
    with conn.pipeline():
        found = conn.execute(_PATIENT, (patient_id,))
        conditions = conn.execute(_CONDITIONS, (patient_id,))
        active = conn.execute(_ACTIVE_MEDICATIONS, (patient_id,))
        recent = conn.execute(_RECENT_MEDICATIONS, (patient_id, RECENT_MEDICATIONS))
        encounters = conn.execute(_RECENT_ENCOUNTERS, (patient_id, RECENT_ENCOUNTERS))
        latest = conn.execute(
            _LATEST_OBSERVATIONS,
            (patient_id, list(OBSERVATION_CATEGORIES), MAX_OBSERVATIONS),
        )
        written = conn.execute(_NOTES, (patient_id, MAX_NOTES))

    patient = found.fetchone()
    if patient is None or patient[0] is None:
        return None

    medications = [row[0] for row in active.fetchall()]
    return {
        "patient": patient[0],
        "conditions": [row[0] for row in conditions.fetchall()],
        "medications": medications or [row[0] for row in recent.fetchall()],
        "encounters": [row[0] for row in encounters.fetchall()],
        "observations": [row[0] for row in latest.fetchall()],
        "notes": _note_rows(written.fetchall()),
    }


def notes(
    conn: psycopg.Connection[Any], patient_id: str, limit: int = MAX_NOTES
) -> list[dict[str, Any]]:
    """The patient's notes, newest first: ``id, patient_id, author_sub, obo_jti,
    text, created_at`` (ISO 8601)."""
    return _note_rows(conn.execute(_NOTES, (patient_id, limit)).fetchall())


def _note_rows(rows: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": nid,
            "patient_id": pid,
            "author_sub": author,
            "obo_jti": jti,
            "text": text,
            "created_at": created.isoformat(),
        }
        for nid, pid, author, jti, text, created in rows
    ]


def observations(
    conn: psycopg.Connection[Any], patient_id: str, wanted: ObservationFilter
) -> list[Any]:
    """The patient's Observations matching ``wanted``, newest first."""
    params = {"patient_id": patient_id, **asdict(wanted)}
    return [row[0] for row in conn.execute(_OBSERVATIONS, params).fetchall()]
