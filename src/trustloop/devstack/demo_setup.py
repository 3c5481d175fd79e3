"""Deterministic demo set-up of the imported records (dev-only).

Patients sorted by id get their care team from
:func:`trustloop.devstack.demo.care_team_for` and their restriction from
:func:`trustloop.devstack.demo.is_sensitive`, so the IdP stand-in and the database
agree on every clinician ``sub``. Idempotent: running it again rewrites the same
rows; care-team rows of anyone other than the demo clinicians are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import structlog

from trustloop.devstack.demo import CLINICIANS, care_team_for, is_sensitive

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DemoSummary:
    patients: int
    sensitive: int
    memberships: int


def apply_demo_setup(conninfo_admin: str) -> DemoSummary:
    """Assign care teams and sensitivity to every loaded patient, in one transaction."""
    with psycopg.connect(conninfo_admin) as conn:
        ids = [
            r[0] for r in conn.execute("SELECT id FROM clinical.patients ORDER BY id")
        ]
        subs = [c.sub for c in CLINICIANS]
        conn.execute(
            "DELETE FROM clinical.care_team_members WHERE clinician_sub = ANY(%s)",
            (subs,),
        )
        flags = [(is_sensitive(i), pid) for i, pid in enumerate(ids)]
        members = [
            (c.sub, pid, c.role) for i, pid in enumerate(ids) for c in care_team_for(i)
        ]
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
