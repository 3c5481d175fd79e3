"""Deterministic demo set-up of the imported records (dev-only).

Each patient that has no care-team rows yet gets its care team from
:func:`trustloop.devstack.demo.care_team_for` and its restriction from
:func:`trustloop.devstack.demo.is_sensitive`, both derived from the patient's id
alone, so the IdP stand-in and the database agree on every clinician ``sub``.

Patients that already have a care team keep it, and keep their ``sensitive`` flag:
loading more patients later never widens (or narrows) anyone's access to the
patients already there. Running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import structlog

from trustloop.devstack.demo import care_team_for, is_sensitive

log = structlog.get_logger(__name__)

_UNASSIGNED = """
    SELECT p.id FROM clinical.patients AS p
     WHERE NOT EXISTS (
           SELECT 1 FROM clinical.care_team_members AS m WHERE m.patient_id = p.id)
     ORDER BY p.id
     FOR UPDATE OF p
"""


@dataclass(frozen=True)
class DemoSummary:
    """What one run assigned: only the patients that had no care team before it."""

    patients: int
    sensitive: int
    memberships: int


def apply_demo_setup(conninfo_admin: str) -> DemoSummary:
    """Assign a care team and sensitivity to each unassigned patient, in one go."""
    with psycopg.connect(conninfo_admin) as conn:
        ids = [str(row[0]) for row in conn.execute(_UNASSIGNED)]
        flags = [(is_sensitive(pid), pid) for pid in ids]
        members = [(c.sub, pid, c.role) for pid in ids for c in care_team_for(pid)]

        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE clinical.patients SET sensitive = %s WHERE id = %s", flags
            )
            cur.executemany(
                "INSERT INTO clinical.care_team_members (clinician_sub, patient_id, role)"
                " VALUES (%s, %s, %s)",
                members,
            )

    summary = DemoSummary(len(ids), sum(f for f, _ in flags), len(members))
    log.info("demo_applied", **vars(summary))
    return summary
