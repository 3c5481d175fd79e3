"""The two baselines the rhythm is measured against, on the same cluster and chart.

- **floor**: the cost of an ephemeral credential itself, with no identity work:
  create a login role (SCRAM verifier computed client-side, group membership, grant
  row, one transaction, as the lease engine does), connect as it over TCP, read the
  same chart, close, terminate its sessions and drop it.
- **pooled**: one standing connection that stays open, reading the same chart: what
  a conventional service account with a connection pool would pay.

And the cost of one audit line (:func:`audit_append`), which the MCP server's
``timings_ms`` cannot hold: the line is written after them.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from trustloop.audit.chain import AuditLog
from trustloop.records import queries

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo

_GRANT = (
    "insert into access.grants (role_name, jti, clinician_sub, rar_type, action,"
    " resource_id, stepped_up, expires_at)"
    " values (%s, %s, 'bench', 'patient_record', 'read', %s, false,"
    " now() + interval '1 minute')"
)


def floor(cluster: ClusterInfo, patient_id: str, n: int) -> list[float]:
    """Milliseconds per create-connect-read-drop cycle."""
    times = []
    with psycopg.connect(cluster.admin_conninfo(), autocommit=True) as admin:
        for i in range(n):
            started = time.perf_counter()
            _one_ephemeral_read(admin, cluster, patient_id, f"bench_floor_{i}")
            times.append((time.perf_counter() - started) * 1000)
    return times


def _one_ephemeral_read(
    admin: psycopg.Connection[tuple[object, ...]],
    cluster: ClusterInfo,
    patient_id: str,
    role: str,
) -> None:
    password = secrets.token_urlsafe(32)
    verifier = admin.pgconn.encrypt_password(
        password.encode(), role.encode(), b"scram-sha-256"
    ).decode()
    name = sql.Identifier(role)
    with admin.transaction():
        admin.execute(
            sql.SQL("create role {} login password {} valid until {}").format(
                name, sql.Literal(verifier), sql.Literal("infinity")
            )
        )
        admin.execute(sql.SQL("grant clinical_reader to {}").format(name))
        admin.execute(_GRANT, (role, role, patient_id))
    try:
        with psycopg.connect(cluster.tcp_conninfo(role, password)) as conn:
            if queries.read_chart(conn, patient_id) is None:
                raise SystemExit("the floor read found no chart")
    finally:
        admin.execute(
            "select pg_terminate_backend(pid, 2000) from pg_stat_activity"
            " where usename = %s",
            (role,),
        )
        with admin.transaction():
            admin.execute(sql.SQL("drop role {}").format(name))
            admin.execute("delete from access.grants where role_name = %s", (role,))


def pooled(cluster: ClusterInfo, patient_id: str, n: int) -> list[float]:
    """Milliseconds per chart read on one connection that stays open."""
    role, password = "bench_pooled", secrets.token_urlsafe(32)
    admin_info = cluster.admin_conninfo()
    with psycopg.connect(admin_info, autocommit=True) as admin:
        admin.execute(
            sql.SQL("create role {} login password {} in role clinical_reader").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        admin.execute(_GRANT.replace("1 minute", "1 hour"), (role, role, patient_id))
    times = []
    try:
        with psycopg.connect(cluster.tcp_conninfo(role, password)) as conn:
            for _ in range(n):
                started = time.perf_counter()
                queries.read_chart(conn, patient_id)
                conn.rollback()
                times.append((time.perf_counter() - started) * 1000)
    finally:
        with psycopg.connect(admin_info, autocommit=True) as admin:
            admin.execute("delete from access.grants where role_name = %s", (role,))
            admin.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))
    return times


def audit_append(directory: Path, n: int) -> list[float]:
    """Milliseconds per hash-chained audit line like the MCP server's ``tool_call``."""
    log = AuditLog(directory / "mcp.jsonl", "mcp")
    timings = {"introspect": 3.1, "exchange": 7.2, "lease": 12.5, "connect": 6.0}
    times = []
    for i in range(n):
        started = time.perf_counter()
        log.append(
            "tool_call", tool="read_patient_record", jti=f"{i:032x}", timings_ms=timings
        )
        times.append((time.perf_counter() - started) * 1000)
    return times
