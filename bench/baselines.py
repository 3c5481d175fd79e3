"""The two baselines the rhythm is measured against, on the same cluster and chart.

- **floor**: the cost of an ephemeral credential itself, with no identity work:
  create a login role (random password and SCRAM verifier made by the lease
  engine's own :mod:`~trustloop.devstack.vault.scram_verifier`, one PBKDF2
  round; group membership, grant row, one transaction, as the lease engine
  does), connect as it over TCP, read the same chart, close, terminate its
  sessions and drop it. Each phase is timed too (:data:`FLOOR_PHASES`), so the
  rhythm's steps can be set against the part of the floor they contain.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from trustloop.audit.chain import AuditLog
from trustloop.devstack.vault.lease_engine import EXIT_POLL_S
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
# One floor cycle's phases, in order; each maps to the rhythm step that holds it.
FLOOR_PHASES = {
    "create": "lease",
    "connect": "connect",
    "read": "query",
    "close": "close",
    "drop": "revoke",
}


@dataclass
class Cycles:
    """Milliseconds per whole cycle, and per phase of each cycle."""

    totals: list[float] = field(default_factory=list)
    phases: dict[str, list[float]] = field(
        default_factory=lambda: {phase: [] for phase in FLOOR_PHASES}
    )


def floor(cluster: ClusterInfo, patient_id: str, n: int) -> Cycles:
    """Create-connect-read-drop cycles, the credential made as the leases are."""
    return _cycles(cluster, patient_id, n, _lease_login)


def floor_libpq(cluster: ClusterInfo, patient_id: str, n: int) -> Cycles:
    """The same cycles with libpq's verifier (4096 PBKDF2 rounds, twice)."""
    return _cycles(cluster, patient_id, n, _libpq_login)


def _cycles(cluster: ClusterInfo, patient_id: str, n: int, login: _Login) -> Cycles:
    cycles = Cycles()
    with psycopg.connect(cluster.admin_conninfo(), autocommit=True) as admin:
        for i in range(n):
            lap = _Lap()
            role = f"bench_floor_{i}"
            verifier, conninfo = login(admin, cluster, role)
            _one_ephemeral_read(admin, patient_id, role, verifier, conninfo, lap)
            cycles.totals.append(lap.total_ms())
            for phase in FLOOR_PHASES:
                cycles.phases[phase].append(lap.phases_ms[phase])
    return cycles


class _Lap:
    """Splits one cycle into phases; the total runs from its creation."""

    def __init__(self) -> None:
        self.started = self._last = time.perf_counter()
        self.phases_ms: dict[str, float] = {}

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases_ms[phase] = (now - self._last) * 1000
        self._last = now

    def total_ms(self) -> float:
        return (self._last - self.started) * 1000


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
    lap: _Lap,
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
    lap.mark("create")
    try:
        conn = psycopg.connect(conninfo)
        lap.mark("connect")
        try:
            if queries.read_chart(conn, patient_id) is None:
                raise SystemExit("the floor read found no chart")
            lap.mark("read")
        finally:
            conn.close()
        lap.mark("close")
    finally:
        _end_sessions(admin, role)
        with admin.transaction():
            admin.execute(sql.SQL("drop role {}").format(name))
            admin.execute("delete from access.grants where role_name = %s", (role,))
    lap.mark("drop")


def _end_sessions(admin: Admin, role: str) -> None:
    """Terminate the role's sessions and wait for them to exit, as a revoke does.

    Polled every ``EXIT_POLL_S`` like the lease engine, not with
    ``pg_terminate_backend``'s own wait, which looks in 100 ms steps and would
    give the floor a p99 no revoke has.
    """
    # Materialized first: in one WHERE the planner may call the cheaper
    # pg_terminate_backend before it filters on the role.
    signalled = admin.execute(
        "with mine as materialized (select pid from pg_stat_activity"
        " where usename = %s) select pid from mine where pg_terminate_backend(pid)",
        (role,),
    ).fetchall()
    pids = [row[0] for row in signalled]
    deadline = time.monotonic() + 2.0
    while pids and time.monotonic() < deadline:
        left = admin.execute(
            "select count(*) from pg_stat_activity where pid = any(%s)", (pids,)
        ).fetchone()
        if left is None or left[0] == 0:
            return
        time.sleep(EXIT_POLL_S)


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
