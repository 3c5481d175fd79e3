"""The two baselines the rhythm is measured against, on the same cluster and chart.

- **floor**: the cost of an ephemeral credential itself, with no identity work:
  create a login role (random password and SCRAM verifier made by the lease
  engine's own :mod:`~trustloop.devstack.vault.scram_verifier`, one PBKDF2
  round; group membership, grant row, one transaction, as the lease engine
  does), connect as it over TCP, read the same chart, close, terminate its
  sessions and drop it.
- **floor_libpq**: the same cycle with the verifier libpq computes (PBKDF2, 4096
  rounds, so the login stretches 4096 times too): how the leases were made
  before, and how PostgreSQL is usually used.
- **pooled**: one standing connection that stays open, reading the same chart: what
  a conventional service account with a connection pool would pay.

And the cost of one audit line (:func:`audit_append`), which the MCP server's
``timings_ms`` cannot hold: the line is written after them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from trustloop.audit.chain import AuditLog
from trustloop.devstack.vault.scram_verifier import random_password, scram_verifier
from trustloop.records import queries

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo

_GRANT = (
    "insert into access.grants (role_name, jti, clinician_sub, rar_type, action,"
    " resource_id, stepped_up, expires_at)"
    " values (%s, %s, 'bench', 'patient_record', 'read', %s, false,"
    " now() + interval '1 minute')"
)


Admin = psycopg.Connection[tuple[object, ...]]
# How one cycle makes its credential: (admin, role) -> (verifier, conninfo).
_Login = Callable[[Admin, "ClusterInfo", str], tuple[str, str]]


def floor(cluster: ClusterInfo, patient_id: str, n: int) -> list[float]:
    """Milliseconds per create-connect-read-drop cycle, as the leases are made."""
    return _cycles(cluster, patient_id, n, _lease_login)


def floor_libpq(cluster: ClusterInfo, patient_id: str, n: int) -> list[float]:
    """Milliseconds per cycle with libpq's verifier (4096 PBKDF2 rounds, twice)."""
    return _cycles(cluster, patient_id, n, _libpq_login)


def _cycles(
    cluster: ClusterInfo, patient_id: str, n: int, login: _Login
) -> list[float]:
    times = []
    with psycopg.connect(cluster.admin_conninfo(), autocommit=True) as admin:
        for i in range(n):
            started = time.perf_counter()
            role = f"bench_floor_{i}"
            verifier, conninfo = login(admin, cluster, role)
            _one_ephemeral_read(admin, patient_id, role, verifier, conninfo)
            times.append((time.perf_counter() - started) * 1000)
    return times


def _lease_login(admin: Admin, cluster: ClusterInfo, role: str) -> tuple[str, str]:
    """The lease engine's credential: random password, one-round verifier."""
    password = random_password()
    return scram_verifier(password), cluster.tcp_conninfo(role, password)


def _libpq_login(admin: Admin, cluster: ClusterInfo, role: str) -> tuple[str, str]:
    """PostgreSQL's default way: libpq's verifier, stretched 4096 times."""
    password = secrets.token_urlsafe(32)
    verifier = admin.pgconn.encrypt_password(
        password.encode(), role.encode(), b"scram-sha-256"
    ).decode()
    return verifier, cluster.tcp_conninfo(role, password)


def _one_ephemeral_read(
    admin: Admin,
    patient_id: str,
    role: str,
    verifier: str,
    conninfo: str,
) -> None:
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
        with psycopg.connect(conninfo) as conn:
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
