"""The chart query (one pipelined round trip) answers as its statements one by one."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

from trustloop.records import queries

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trustloop.devstack.postgres import ClusterInfo

pytestmark = pytest.mark.integration

STOP_ALL = (
    "update clinical.medication_requests set status = 'stopped',"
    " resource = jsonb_set(resource, '{status}', '\"stopped\"')"
    " where patient_id = %s"
)


def _one_by_one(conn: psycopg.Connection[Any], pid: str) -> dict[str, Any]:
    def resources(query: str, *params: object) -> list[Any]:
        return [row[0] for row in conn.execute(query, params).fetchall()]

    active = resources(queries._ACTIVE_MEDICATIONS, pid)
    recent = resources(queries._RECENT_MEDICATIONS, pid, queries.RECENT_MEDICATIONS)
    return {
        "patient": conn.execute(queries._PATIENT, (pid,)).fetchone(),
        "conditions": resources(queries._CONDITIONS, pid),
        "medications": active or recent,
        "encounters": resources(
            queries._RECENT_ENCOUNTERS, pid, queries.RECENT_ENCOUNTERS
        ),
        "observations": resources(
            queries._LATEST_OBSERVATIONS,
            pid,
            list(queries.OBSERVATION_CATEGORIES),
            queries.MAX_OBSERVATIONS,
        ),
    }


def _patient_with_medications(cluster: ClusterInfo) -> str:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        row = conn.execute(
            "select patient_id from clinical.medication_requests group by patient_id"
            " having count(*) > 1 order by count(*) desc, patient_id limit 1"
        ).fetchone()
    assert row is not None, "the samples hold a patient with several prescriptions"
    return str(row[0])


@contextmanager
def as_granted_reader(
    cluster: ClusterInfo, pid: str, *, before: str | None = None
) -> Iterator[psycopg.Connection[Any]]:
    """One transaction, rolled back: a reader role with one grant row for ``pid``,
    made the session's user (RLS checks ``session_user``) without a login;
    ``before``: a statement run first as the admin, in the same transaction."""
    jti = str(uuid.uuid4())
    role = "obo_" + jti.replace("-", "")
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} NOLOGIN IN ROLE clinical_reader").format(
                sql.Identifier(role)
            )
        )
        conn.execute(
            "INSERT INTO access.grants (role_name, jti, clinician_sub, rar_type,"
            " action, resource_id, stepped_up, expires_at)"
            " VALUES (%s, %s, 'clin-achen', 'patient_record', 'read', %s, true,"
            " now() + interval '1 minute')",
            (role, jti, pid),
        )
        if before is not None:
            conn.execute(before.encode(), (pid,))
        conn.execute(
            sql.SQL("SET SESSION AUTHORIZATION {}").format(sql.Identifier(role))
        )
        try:
            yield conn
        finally:
            conn.rollback()


def test_the_pipelined_chart_matches_its_statements_run_one_by_one(
    cluster: ClusterInfo,
) -> None:
    pid = _patient_with_medications(cluster)
    with as_granted_reader(cluster, pid) as conn:
        chart = queries.read_chart(conn, pid)
        expected = _one_by_one(conn, pid)

    assert chart is not None
    assert expected["patient"] is not None
    assert chart["patient"] == expected["patient"][0]
    for part in ("conditions", "medications", "encounters", "observations"):
        assert chart[part] == expected[part], part
    assert chart["observations"]


def test_with_no_active_prescription_the_chart_shows_the_most_recent_few(
    cluster: ClusterInfo,
) -> None:
    pid = _patient_with_medications(cluster)
    with as_granted_reader(cluster, pid, before=STOP_ALL) as conn:
        chart = queries.read_chart(conn, pid)
        expected = _one_by_one(conn, pid)

    assert chart is not None
    medications = chart["medications"]
    assert len(medications) > 1
    assert all(m["status"] == "stopped" for m in medications)
    assert medications == expected["medications"]


def test_a_patient_that_does_not_exist_has_no_chart(cluster: ClusterInfo) -> None:
    with as_granted_reader(cluster, "no-such-patient") as conn:
        assert queries.read_chart(conn, "no-such-patient") is None
