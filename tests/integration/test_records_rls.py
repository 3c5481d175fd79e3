"""Row-level security: what an ephemeral role, the IdP and the lease engine can read.

Roles and grant rows are made here the way the lease engine makes them (as
``trustloop_lease_engine`` over the unix socket), so these tests also prove that role
has what it needs.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

from trustloop.records import queries

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trustloop.devstack.postgres import ClusterInfo

LEASE_ENGINE = "trustloop_lease_engine"
PATIENT_TABLES = ("encounters", "conditions", "observations", "medication_requests")


@dataclass(frozen=True)
class Ephemeral:
    role: str
    password: str
    jti: str

    def conninfo(self, cluster: ClusterInfo) -> str:
        return cluster.tcp_conninfo(self.role, self.password, application_name=self.jti)


@contextmanager
def ephemeral_role(
    cluster: ClusterInfo,
    *,
    rar_type: str,
    resource_id: str,
    clinician_sub: str = "clin-achen",
    stepped_up: bool = False,
    expires_in: timedelta = timedelta(seconds=60),
) -> Iterator[Ephemeral]:
    """``obo_<jti>`` with LOGIN PASSWORD, member of clinical_reader, one grant row."""
    jti = str(uuid.uuid4())
    eph = Ephemeral("obo_" + jti.replace("-", ""), secrets.token_urlsafe(24), jti)
    valid_until = datetime.now(UTC) + timedelta(seconds=120)
    grant_expires = datetime.now(UTC) + expires_in

    with psycopg.connect(cluster.admin_conninfo(LEASE_ENGINE), autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE ROLE {} LOGIN PASSWORD {} VALID UNTIL {} IN ROLE clinical_reader"
            ).format(
                sql.Identifier(eph.role),
                sql.Literal(eph.password),
                sql.Literal(valid_until.isoformat()),
            )
        )
        conn.execute(
            "INSERT INTO access.grants (role_name, jti, clinician_sub, rar_type, action,"
            " resource_id, stepped_up, expires_at)"
            " VALUES (%s, %s, %s, %s, 'read', %s, %s, %s)",
            (
                eph.role,
                jti,
                clinician_sub,
                rar_type,
                resource_id,
                stepped_up,
                grant_expires,
            ),
        )
    try:
        yield eph
    finally:
        _revoke(cluster, eph.role)


def _revoke(cluster: ClusterInfo, role: str) -> None:
    with psycopg.connect(cluster.admin_conninfo(LEASE_ENGINE), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
            (role,),
        )
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        conn.execute("DELETE FROM access.grants WHERE role_name = %s", (role,))


def _connect(cluster: ClusterInfo, eph: Ephemeral) -> psycopg.Connection[Any]:
    return psycopg.connect(eph.conninfo(cluster), autocommit=True)


def _admin_scalar(cluster: ClusterInfo, query: str, *params: object) -> Any:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        row = conn.execute(query.encode(), params).fetchone()
    return None if row is None else row[0]


def _patient(cluster: ClusterInfo, *, sensitive: bool) -> str:
    pid = _admin_scalar(
        cluster,
        "SELECT id FROM clinical.patients WHERE sensitive = %s ORDER BY id LIMIT 1",
        sensitive,
    )
    assert isinstance(pid, str)
    return pid


def _care_team(cluster: ClusterInfo, sub: str) -> set[str]:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        rows = conn.execute(
            "SELECT patient_id FROM clinical.care_team_members WHERE clinician_sub = %s",
            (sub,),
        ).fetchall()
    return {r[0] for r in rows}


def _visible(conn: psycopg.Connection[Any], table: str) -> set[str]:
    query = sql.SQL("SELECT DISTINCT patient_id FROM clinical.{}").format(
        sql.Identifier(table)
    )
    return {r[0] for r in conn.execute(query).fetchall()}


@pytest.mark.integration
def test_patient_grant_sees_exactly_its_patient(cluster: ClusterInfo) -> None:
    pid = _patient(cluster, sensitive=False)
    other = _admin_scalar(
        cluster, "SELECT id FROM clinical.patients WHERE id <> %s LIMIT 1", pid
    )

    with (
        ephemeral_role(cluster, rar_type="patient_record", resource_id=pid) as eph,
        _connect(cluster, eph) as conn,
    ):
        roster = [p["id"] for p in queries.list_roster(conn)]
        chart = queries.read_chart(conn, pid)
        other_chart = queries.read_chart(conn, other)
        seen = {table: _visible(conn, table) for table in PATIENT_TABLES}

    assert roster == [pid]
    assert chart is not None
    assert chart["patient"]["id"] == pid
    assert other_chart is None
    assert seen["observations"] == {pid}
    assert all(rows <= {pid} for rows in seen.values())


@pytest.mark.integration
def test_read_chart_returns_fhir_resources_of_that_patient(
    cluster: ClusterInfo,
) -> None:
    pid = _patient(cluster, sensitive=False)

    with (
        ephemeral_role(cluster, rar_type="patient_record", resource_id=pid) as eph,
        _connect(cluster, eph) as conn,
    ):
        chart = queries.read_chart(conn, pid)

    assert chart is not None
    assert chart["patient"]["resourceType"] == "Patient"
    observations = chart["observations"]
    codes = [o["code"]["coding"][0]["code"] for o in observations]
    assert 0 < len(observations) <= queries.MAX_OBSERVATIONS
    assert len(codes) == len(set(codes))
    assert all(o["subject"]["reference"] == f"Patient/{pid}" for o in observations)
    assert all(c["resourceType"] == "Condition" for c in chart["conditions"])
    assert all(m["resourceType"] == "MedicationRequest" for m in chart["medications"])


@pytest.mark.integration
def test_expired_grant_sees_nothing(cluster: ClusterInfo) -> None:
    pid = _patient(cluster, sensitive=False)

    with (
        ephemeral_role(
            cluster,
            rar_type="patient_record",
            resource_id=pid,
            expires_in=timedelta(seconds=-1),
        ) as eph,
        _connect(cluster, eph) as conn,
    ):
        roster = queries.list_roster(conn)
        chart = queries.read_chart(conn, pid)
        seen = {table: _visible(conn, table) for table in PATIENT_TABLES}

    assert roster == []
    assert chart is None
    assert all(rows == set() for rows in seen.values())


@pytest.mark.integration
def test_sensitive_patient_needs_a_stepped_up_grant(cluster: ClusterInfo) -> None:
    pid = _patient(cluster, sensitive=True)

    with (
        ephemeral_role(cluster, rar_type="patient_record", resource_id=pid) as plain,
        _connect(cluster, plain) as conn,
    ):
        refused = queries.read_chart(conn, pid)
        refused_rows = _visible(conn, "observations")
    with (
        ephemeral_role(
            cluster, rar_type="patient_record", resource_id=pid, stepped_up=True
        ) as stepped,
        _connect(cluster, stepped) as conn,
    ):
        allowed = queries.read_chart(conn, pid)

    assert refused is None
    assert refused_rows == set()
    assert allowed is not None
    assert allowed["patient"]["id"] == pid


@pytest.mark.integration
def test_roster_grant_sees_only_care_team_patients(cluster: ClusterInfo) -> None:
    team = _care_team(cluster, "clin-achen")
    member = sorted(team)[0]

    with (
        ephemeral_role(
            cluster, rar_type="care_team_roster", resource_id="clin-achen"
        ) as eph,
        _connect(cluster, eph) as conn,
    ):
        roster = queries.list_roster(conn)
        chart = queries.read_chart(conn, member)
        seen = {table: _visible(conn, table) for table in PATIENT_TABLES}

    assert team
    assert {p["id"] for p in roster} == team
    assert set(roster[0]) == {"id", "name", "birth_date", "gender", "sensitive"}
    assert chart is None
    assert all(rows == set() for rows in seen.values())


@pytest.mark.integration
def test_roster_grant_cannot_read_the_patient_resource(cluster: ClusterInfo) -> None:
    with (
        ephemeral_role(
            cluster, rar_type="care_team_roster", resource_id="clin-achen"
        ) as eph,
        _connect(cluster, eph) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("SELECT resource FROM clinical.patients")


@pytest.mark.integration
def test_roster_grant_naming_another_clinician_sees_nothing(
    cluster: ClusterInfo,
) -> None:
    with (
        ephemeral_role(
            cluster,
            rar_type="care_team_roster",
            resource_id="clin-bokafor",
            clinician_sub="clin-achen",
        ) as eph,
        _connect(cluster, eph) as conn,
    ):
        roster = queries.list_roster(conn)

    assert roster == []


@pytest.mark.integration
def test_ephemeral_role_cannot_read_access_grants(cluster: ClusterInfo) -> None:
    pid = _patient(cluster, sensitive=False)

    with (
        ephemeral_role(cluster, rar_type="patient_record", resource_id=pid) as eph,
        _connect(cluster, eph) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("SELECT * FROM access.grants")


@pytest.mark.integration
def test_ephemeral_role_cannot_log_in_over_the_unix_socket(
    cluster: ClusterInfo,
) -> None:
    """Peer authentication maps the OS user to the admin roles only."""
    pid = _patient(cluster, sensitive=False)

    with (
        ephemeral_role(cluster, rar_type="patient_record", resource_id=pid) as eph,
        pytest.raises(psycopg.OperationalError, match="authentication failed"),
    ):
        psycopg.connect(cluster.admin_conninfo(eph.role)).close()


@pytest.mark.integration
def test_idp_reads_care_teams_and_sensitivity_only(cluster: ClusterInfo) -> None:
    total = _admin_scalar(cluster, "SELECT count(*) FROM clinical.care_team_members")

    with psycopg.connect(cluster.admin_conninfo("trustloop_idp")) as conn:
        members = conn.execute("SELECT count(*) FROM clinical.care_team_members")
        flags = conn.execute("SELECT id, sensitive FROM clinical.patients").fetchall()
        assert members.fetchone() == (total,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT name FROM clinical.patients")

    assert len(flags) == 40


@pytest.mark.integration
def test_pgaudit_logs_reads_under_the_ephemeral_role(cluster: ClusterInfo) -> None:
    pid = _patient(cluster, sensitive=False)

    with (
        ephemeral_role(cluster, rar_type="patient_record", resource_id=pid) as eph,
        _connect(cluster, eph) as conn,
    ):
        queries.read_chart(conn, pid)
        role = eph.role

    lines = _wait_for_audit_lines(cluster, role)

    assert lines
    assert all(pid not in line["message"] for line in lines)


def _wait_for_audit_lines(cluster: ClusterInfo, role: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [
            record
            for path in sorted(cluster.log_dir().glob("*.json"))
            for record in map(json.loads, path.read_text().splitlines())
            if record.get("user") == role
            and str(record.get("message", "")).startswith("AUDIT:")
        ]
        if found:
            return found
        time.sleep(0.1)
    return []


@pytest.mark.integration
@pytest.mark.parametrize("dbname", ["postgres", "template1"])
def test_ephemeral_role_cannot_connect_to_other_databases(
    cluster: ClusterInfo, dbname: str
) -> None:
    pid = _patient(cluster, sensitive=False)

    with (
        ephemeral_role(cluster, rar_type="patient_record", resource_id=pid) as eph,
        pytest.raises(psycopg.OperationalError, match="permission denied"),
    ):
        psycopg.connect(eph.conninfo(cluster), dbname=dbname).close()


def _clinical_tables(cluster: ClusterInfo) -> dict[str, str | None]:
    """Every table of schema ``clinical`` and the column naming its patient.

    ``patients`` names it ``id``; a table without one (``practitioners``) maps to
    None and is looked at whole.
    """
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        rows = conn.execute(
            "SELECT t.table_name, bool_or(c.column_name = 'patient_id')"
            "  FROM information_schema.tables t"
            "  JOIN information_schema.columns c USING (table_schema, table_name)"
            " WHERE t.table_schema = 'clinical' GROUP BY 1"
        ).fetchall()
    return {
        str(name): "patient_id" if has else ("id" if name == "patients" else None)
        for name, has in rows
    }


def _count(
    conn: psycopg.Connection[Any], table: str, column: str | None, pid: str
) -> int:
    """Hand-written SQL for one patient's rows; a refused read counts as none."""
    where = (
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Literal(pid))
        if column
        else sql.SQL("true")
    )
    query = sql.SQL("SELECT count(*) FROM clinical.{} WHERE {}").format(
        sql.Identifier(table), where
    )
    try:
        row = conn.execute(query).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return 0
    return 0 if row is None else int(row[0])


@pytest.mark.integration
def test_grant_for_one_patient_sees_no_row_of_another_in_any_clinical_table(
    cluster: ClusterInfo,
) -> None:
    """Hand-written SQL, every table, as a role granted patient A, asking for B."""
    granted = _patient(cluster, sensitive=False)
    other = _admin_scalar(
        cluster,
        "SELECT patient_id FROM clinical.observations WHERE patient_id <> %s"
        " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
        granted,
    )
    tables = _clinical_tables(cluster)
    with psycopg.connect(cluster.admin_conninfo()) as admin:
        stored = {t: _count(admin, t, c, other) for t, c in tables.items()}

    with (
        ephemeral_role(cluster, rar_type="patient_record", resource_id=granted) as eph,
        _connect(cluster, eph) as conn,
    ):
        seen = {t: _count(conn, t, c, other) for t, c in tables.items()}
        own = _count(conn, "observations", "patient_id", granted)
        resource = conn.execute(
            "SELECT clinical.patient_resource(%s)", (other,)
        ).fetchone()

    assert set(tables) >= {
        "patients",
        "encounters",
        "conditions",
        "observations",
        "medication_requests",
        "notes",
        "medication_changes",
        "care_team_members",
        "practitioners",
    }
    assert stored["observations"] > 0
    assert stored["patients"] == 1
    assert own > 0
    assert seen == dict.fromkeys(tables, 0)
    assert resource == (None,)
