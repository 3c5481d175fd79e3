"""Sessions that outlive their role: ended by the reaper's orphan sweep, and
by a revoke retried after its connection was lost past the drop."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
import pytest
from lease_support import admin_rows, grant_spec, lease_engine, leased
from psycopg import sql

from trustloop.devstack.vault import lease_engine as engine_module

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo

pytestmark = pytest.mark.integration


def _patient(cluster: ClusterInfo) -> str:
    rows = admin_rows(
        cluster, "SELECT id FROM clinical.patients WHERE NOT sensitive ORDER BY id"
    )
    return str(rows[0][0])


def _alive(conn: psycopg.Connection[object]) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def test_a_session_whose_role_was_dropped_is_ended_and_no_other(
    cluster: ClusterInfo,
) -> None:
    """PostgreSQL lets a session keep working after DROP ROLE (how a login that
    raced a revoke ends up); the sweep ends it and leaves live roles' alone."""
    patient = _patient(cluster)

    with (
        lease_engine(cluster) as engine,
        leased(engine, grant_spec(patient, "read")) as bystander,
        bystander.connect(cluster) as other,
        leased(engine, grant_spec(patient, "read")) as doomed,
        doomed.connect(cluster) as orphan,
    ):
        with psycopg.connect(cluster.admin_conninfo(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(doomed.role)))
        survived_the_drop = _alive(orphan)
        ended = engine.end_orphaned_sessions()
        orphan_alive, other_alive = _alive(orphan), _alive(other)
        again = engine.end_orphaned_sessions()

    assert survived_the_drop  # the trap the sweep exists for
    assert ended == 1
    assert not orphan_alive
    assert other_alive
    assert again == 0


def test_a_retry_after_the_connection_died_past_the_drop_still_sweeps(
    cluster: ClusterInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """First attempt: the session is missed (its first look ends nothing) and the
    connection dies right after the drop committed, before the final sweep. The
    retry finds the role gone and sweeps the oid the first attempt saw."""
    stop_sessions = engine_module._STOP_SESSIONS
    sweep = engine_module._TERMINATE
    # Same columns, nothing signalled: the session looks like one that raced.
    monkeypatch.setattr(
        engine_module,
        "_STOP_SESSIONS",
        "SELECT oid, ARRAY[]::int[], ARRAY[]::int[] FROM pg_roles"
        " WHERE rolname = %(role)s",
    )
    monkeypatch.setattr(
        engine_module,
        "_TERMINATE",
        "SELECT pg_backend_pid(), pg_terminate_backend(pg_backend_pid())"
        " WHERE %s::oid IS NOT NULL",
    )
    retries: list[float] = []

    def between_attempts(seconds: float) -> None:
        retries.append(seconds)
        monkeypatch.setattr(engine_module, "_STOP_SESSIONS", stop_sessions)
        monkeypatch.setattr(engine_module, "_TERMINATE", sweep)

    with lease_engine(cluster, sleep=between_attempts) as engine:
        credential = engine.mint(grant_spec(_patient(cluster), "read"), lambda _: None)
        with psycopg.connect(
            cluster.tcp_conninfo(credential.username, credential.password),
            autocommit=True,
        ) as session:
            session.execute("SELECT 1")
            engine.revoke(credential.username)
            alive = _alive(session)

    assert len(retries) == 1
    assert not alive
    assert not admin_rows(
        cluster, "SELECT 1 FROM pg_roles WHERE rolname = %s", credential.username
    )
