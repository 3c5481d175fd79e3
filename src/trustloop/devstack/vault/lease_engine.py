"""Ephemeral PostgreSQL roles: create one per OBO token, remove it without a trace.

The engine connects as ``trustloop_lease_engine`` (``CREATEROLE``, member of
``pg_signal_backend``, owner of schema ``access``).

Mint, in ONE transaction: record the OBO's ``jti`` in ``access.redeemed_jtis``
(a ``jti`` already there is :class:`AlreadyRedeemedError`: the replay check that
survives a restart, kept until the token expires), ``CREATE ROLE obo_<jti hex>
LOGIN ... VALID UNTIL <exp> CONNECTION LIMIT 2``, ``ALTER ROLE ... SET
statement_timeout`` (shorter than the lease, so a statement ends before its
credential does), ``GRANT`` the group roles (membership only, never a table
privilege), ``INSERT`` the ``access.grants`` row, then the caller's
``before_commit`` (the audit record). Anything failing rolls all
of it back. Mints run concurrently without a lock: "tuple concurrently
updated" comes from two sessions rewriting one catalog row (two ``GRANT ... ON
TABLE`` to one table both rewrite its ``relacl``); a membership grant inserts a
``pg_auth_members`` row of its own, and an ephemeral role never gets a table
privilege (tests/integration/test_lease_concurrency.py, 32 at once).

The password is random (:mod:`~trustloop.devstack.vault.scram_verifier`: 32
printable ASCII characters, quotes and backslashes included) and is sent to the
server only as a SCRAM-SHA-256 verifier computed here, with one PBKDF2 round
(that module says why), so no server log (``log_statement``, pgaudit's ``role``
class, an error's statement) can ever contain it.

Revoke, idempotent: ``ALTER ROLE ... NOLOGIN``, committed (no new sessions);
cancel the role's running statements and wait briefly (the client then reads
"canceling statement", SQLSTATE 57014, which the rhythm reports as an expired
credential, unlike a server restart's 57P01); terminate every session of the
role and wait for it (``DROP ROLE`` alone leaves a live session working); then,
in one transaction under an advisory lock (one revoke of a role at a time,
across processes) and a lock timeout, ``DROP OWNED`` only when the role owns
something (PostgreSQL 15 requires the engine to hold the role's privileges for
it, so it grants itself membership first), ``DROP ROLE``, delete the grant row;
and a final sweep for a session that raced the ``NOLOGIN`` (one still starting
then is invisible to it: :meth:`LeaseEngine.end_orphaned_sessions`, which the
reaper runs every round, ends it). The statements go in psycopg pipelines,
which keep their order on the server: two round trips when nothing runs and the
role owns nothing (the usual end of a tool call). The first commits the
``NOLOGIN`` and, in one statement, cancels the running statements and
terminates the idle sessions; a cancelled one is terminated after the wait.
The second drops the role, deletes the row, commits and sweeps; a role that owns
something fails its ``DROP ROLE`` (2BP01), which rolls it back for the careful
path with ``DROP OWNED``. A transient failure (lost connection, lock timeout,
deadlock) is retried :data:`REVOKE_ATTEMPTS` times with backoff, each attempt on
a connection the pool takes back or closes; a retry that finds the role gone
still sweeps the sessions of the oid an earlier attempt saw.

Nothing a role made outlives its lease: its objects are dropped, never
reassigned. ``REASSIGN OWNED`` would hand them to the engine, where they
survive: a large object holding a chart, granted to PUBLIC, would stay readable
by every later lease, outside row-level security
(tests/integration/test_security_review.py). ``DROP OWNED`` also revokes any
privilege granted to the role, so nothing is left to reassign.

Identifiers and literals go through :mod:`psycopg.sql`, never string formatting;
only names matching :data:`ROLE_NAME` are ever dropped.
"""

from __future__ import annotations

import contextlib
import enum
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import structlog
from psycopg import sql

from trustloop.devstack.jwtcheck import Clock
from trustloop.devstack.vault.pgpool import Connection, ConnectionPool
from trustloop.devstack.vault.scram_verifier import random_password, scram_verifier

log = structlog.get_logger(__name__)

ROLE_NAME = re.compile(r"obo_[0-9a-f]{32}")
CONNECTION_LIMIT = 2
TERMINATE_WAIT_MS = 2000
CANCEL_WAIT_S = 1.0
EXIT_POLL_S = 0.005  # how often a revoke looks whether a session exited
_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '2s'"  # a revoke waits no longer per try
REVOKE_ATTEMPTS = 4
REVOKE_BACKOFF_S = 0.1  # doubled after each failed attempt
STATEMENT_TIMEOUT_MARGIN_MS = 2000  # a statement ends this long before its lease

_CREATE_ROLE = sql.SQL(
    "CREATE ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT "
    "NOREPLICATION NOBYPASSRLS CONNECTION LIMIT {limit} "
    "PASSWORD {verifier} VALID UNTIL {until}"
)
_REDEEM_JTI = "INSERT INTO access.redeemed_jtis (jti, expires_at) VALUES (%s, %s)"
_REDEEMED_PKEY = "redeemed_jtis_pkey"
_FORGET_JTIS = "DELETE FROM access.redeemed_jtis WHERE expires_at < %s"
_INSERT_GRANT = (
    "INSERT INTO access.grants (role_name, jti, clinician_sub, rar_type, action,"
    " resource_id, stepped_up, expires_at, change_sha256)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_TERMINATE = (  # the pids signalled; pg_terminate_backend's own wait is 100 ms steps
    "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE usesysid = %s AND pid <> pg_backend_pid()"
)
_STILL_THERE = (  # a backend leaves pg_stat_activity as it exits, its work undone
    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s) AND usesysid = %s"
)
# One statement: the role's oid; cancel its running statements; terminate its
# other sessions (nothing to cancel there). Every CTE is materialized so each
# filter runs before the function that signals a backend: a function in WHERE
# may otherwise run on other users' rows.
_STOP_SESSIONS = (
    "WITH target AS MATERIALIZED (SELECT oid FROM pg_roles WHERE rolname = %(role)s),"
    " sessions AS MATERIALIZED (SELECT a.pid, a.state = 'active' AS running"
    " FROM pg_stat_activity a JOIN target t ON a.usesysid = t.oid"
    " WHERE a.pid <> pg_backend_pid()),"
    " running AS MATERIALIZED (SELECT pid FROM sessions WHERE running),"
    " cancelled AS MATERIALIZED (SELECT pid FROM running WHERE pg_cancel_backend(pid)),"
    " others AS MATERIALIZED (SELECT pid FROM sessions"
    " WHERE pid NOT IN (SELECT pid FROM cancelled))"
    " SELECT t.oid, ARRAY(SELECT pid FROM cancelled),"
    " ARRAY(SELECT pid FROM others WHERE pg_terminate_backend(pid))"
    " FROM target t"
)
_ROLE_OID = "SELECT oid FROM pg_roles WHERE rolname = %s"
_ADVISORY_LOCK = "SELECT pg_advisory_xact_lock(hashtext(%s))"
_DELETE_GRANT = "DELETE FROM access.grants WHERE role_name = %s"
_STILL_ACTIVE = (
    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s) AND state = 'active'"
)
_OWNS_ANYTHING = (
    "SELECT EXISTS (SELECT 1 FROM pg_shdepend"
    " WHERE refclassid = 'pg_authid'::regclass AND refobjid = %s)"
)
_EXPIRED_OR_ORPHANED = (
    "SELECT r.rolname FROM pg_roles r"
    " LEFT JOIN access.grants g ON g.role_name = r.rolname"
    " WHERE r.rolname ~ '^obo_[0-9a-f]{32}$'"
    " AND (g.role_name IS NULL OR g.expires_at <= %(now)s)"
    " UNION SELECT g.role_name FROM access.grants g WHERE g.expires_at <= %(now)s"
)
_EVERY_ROLE = (
    "SELECT rolname FROM pg_roles WHERE rolname ~ '^obo_[0-9a-f]{32}$'"
    " UNION SELECT role_name FROM access.grants"
)
# Client sessions whose role no longer exists. A login that passed the role's
# login check just before NOLOGIN committed shows in pg_stat_activity only at
# the end of its start-up, after the revoke's sweep looked: it then runs as a
# dropped role (PUBLIC's rights, no grant row), until the reaper ends it here.
# Two statements: the second, with a later snapshot, confirms the role is
# really gone, so a role created and logged in during the first statement is
# never taken for a dropped one; pid and usesysid must both still match.
_ORPHAN_CANDIDATES = (
    "SELECT a.pid, a.usesysid FROM pg_stat_activity a"
    " WHERE a.backend_type = 'client backend' AND a.usesysid IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = a.usesysid)"
)
_END_ORPHANS = (
    "WITH orphaned AS MATERIALIZED (SELECT a.pid FROM pg_stat_activity a"
    " JOIN unnest(%s::int[], %s::oid[]) AS c(pid, usesysid)"
    " ON a.pid = c.pid AND a.usesysid = c.usesysid"
    " WHERE NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = a.usesysid))"
    " SELECT pid FROM orphaned WHERE pg_terminate_backend(pid)"
)
_TRANSIENT = (psycopg.OperationalError, psycopg.errors.InternalError)


class LeaseEngineError(Exception):
    """A role could not be created or removed (details in the server log)."""


class AlreadyRedeemedError(LeaseEngineError):
    """The OBO token's ``jti`` was redeemed before (a replay)."""


class RevokeFailedError(LeaseEngineError):
    """Every attempt at a revoke failed on a transient error; try again later."""


def role_name_for(jti: str) -> str:
    """``obo_<jti hex>``; the ``jti`` must be a UUID (the IdP issues uuid4)."""
    return "obo_" + uuid.UUID(jti).hex


@dataclass(frozen=True)
class GrantSpec:
    """Everything the ephemeral role and its ``access.grants`` row record."""

    role_name: str
    jti: str
    clinician_sub: str
    rar_type: str
    action: str
    resource_id: str
    stepped_up: bool
    expires_at: datetime
    group_roles: tuple[str, ...]
    change_sha256: str | None = None  # writes only: the consented change
    token_expires_at: datetime | None = None  # the OBO's exp; None: expires_at


@dataclass(frozen=True)
class Credential:
    username: str
    password: str = field(repr=False)


class LeaseEngine:
    """Creates and removes ephemeral login roles; thread-safe."""

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        clock: Clock = time.time,
        new_password: Callable[[], str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._new_password = new_password or random_password
        self._sleep = sleep
        self._role_locks = [threading.Lock() for _ in range(16)]

    def mint(
        self, spec: GrantSpec, before_commit: Callable[[Credential], None]
    ) -> Credential:
        """Create role and grant row; commit only if ``before_commit`` returns."""
        _check_role_name(spec.role_name)
        password = self._new_password()
        credential = Credential(spec.role_name, password)
        verifier = scram_verifier(password)
        timeout_ms = self._statement_timeout_ms(spec)

        try:
            with self._pool.connection() as conn, conn.transaction():
                _create_role(conn, spec, verifier, timeout_ms)
                before_commit(credential)
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == _REDEEMED_PKEY:
                raise AlreadyRedeemedError(f"{spec.jti} was redeemed before") from exc
            raise
        return credential

    def forget_redeemed(self, grace_s: float) -> int:
        """Drop the ``jti``s of tokens expired ``grace_s`` ago; how many."""
        until = datetime.fromtimestamp(self._clock() - grace_s, UTC)
        with self._pool.connection() as conn:
            return conn.execute(_FORGET_JTIS, [until]).rowcount

    def revoke(self, role_name: str) -> bool:
        """Remove the role, its sessions and its grant row; False if already gone.

        Raises :class:`LeaseEngineError` when the role owns objects in another
        database: it is then left without login, without sessions and without a
        grant row, and the reaper retries it; :class:`RevokeFailedError` when
        every attempt failed on a transient error.
        """
        _check_role_name(role_name)
        with self._lock_for(role_name):
            outcome = self._revoke_with_retries(role_name)
        if outcome is _Dropped.STUCK:
            raise LeaseEngineError(f"{role_name} owns objects in another database")
        return outcome is _Dropped.YES

    def expired_roles(self) -> list[str]:
        """Roles whose grant expired or is missing; grant rows without a role."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        with self._pool.connection() as conn:
            rows = conn.execute(_EXPIRED_OR_ORPHANED, {"now": now}).fetchall()
        return _role_names(rows)

    def every_role(self) -> list[str]:
        """Every ephemeral role and every grant row, live or not (start-up)."""
        with self._pool.connection() as conn:
            rows = conn.execute(_EVERY_ROLE).fetchall()
        return _role_names(rows)

    def end_orphaned_sessions(self) -> int:
        """Terminate every client session whose role no longer exists; how many.

        The reaper calls this every round (see :data:`_ORPHAN_CANDIDATES`).
        """
        with self._pool.connection() as conn:
            rows = conn.execute(_ORPHAN_CANDIDATES).fetchall()
            if not rows:
                return 0
            pids = [int(row[0]) for row in rows]
            oids = [int(row[1]) for row in rows]
            ended = conn.execute(_END_ORPHANS, [pids, oids]).fetchall()
        if ended:
            log.warning("orphaned_sessions_ended", count=len(ended))
        return len(ended)

    def _revoke_with_retries(self, role_name: str) -> _Dropped:
        delay = REVOKE_BACKOFF_S
        seen: list[int] = []  # the role's oid, once an attempt found the role
        for attempt in range(1, REVOKE_ATTEMPTS + 1):
            try:
                return self._revoke_once(role_name, seen)
            except _TRANSIENT as exc:
                log.warning(
                    "lease_revoke_retry",
                    role=role_name,
                    attempt=attempt,
                    error=type(exc).__name__,
                )
                if attempt == REVOKE_ATTEMPTS:
                    raise RevokeFailedError(f"{role_name}: revoke failed") from exc
                self._sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _revoke_once(self, role_name: str, seen: list[int]) -> _Dropped:
        """Two round trips when the role has no running statement and owns nothing.

        First round trip: ``NOLOGIN`` (committed), cancel, terminate the idle
        sessions. Second: lock, drop, delete the row, commit, final sweep. A
        cancelled statement adds the wait and a terminate between them; a role
        that owns something takes the careful path (:func:`_drop_role`).

        ``seen`` keeps the role's oid across attempts: an attempt that lost its
        connection after the drop committed never ran its sweep, and the next
        attempt, finding the role gone, sweeps that oid instead.
        """
        with self._pool.connection() as conn:
            oid = _disable_login(conn, role_name)
            if oid is not None and not seen:
                seen.append(oid)
            if oid is None and seen:
                _terminate_sessions(conn, seen[0])
            outcome = _drop_role_at_once(conn, role_name, oid)
            if outcome is None:
                with conn.transaction():
                    conn.execute(_LOCK_TIMEOUT)
                    outcome = _drop_role(conn, role_name)
                if oid is not None:
                    _terminate_sessions(conn, oid)
        return outcome

    def _statement_timeout_ms(self, spec: GrantSpec) -> int:
        """Shorter than the lease: the margin, or half the lease if that is short."""
        lease_ms = int((spec.expires_at.timestamp() - self._clock()) * 1000)
        return max(lease_ms - STATEMENT_TIMEOUT_MARGIN_MS, lease_ms // 2, 1)

    def _lock_for(self, role_name: str) -> threading.Lock:
        return self._role_locks[hash(role_name) % len(self._role_locks)]


def _check_role_name(role_name: str) -> None:
    if not ROLE_NAME.fullmatch(role_name):
        raise ValueError("not an ephemeral role name")


def _role_names(rows: list[tuple[object, ...]]) -> list[str]:
    return sorted({str(row[0]) for row in rows if ROLE_NAME.fullmatch(str(row[0]))})


def _create_role(
    conn: Connection, spec: GrantSpec, verifier: str, timeout_ms: int
) -> None:
    """Queue the role's statements in the caller's transaction; one round trip.

    The pipeline ends with a sync, so the first failing statement raises here,
    before the caller's ``before_commit`` runs, and the caller's transaction
    rolls all of it back.
    """
    with conn.pipeline():
        _queue_role_statements(conn, spec, verifier, timeout_ms)


def _queue_role_statements(
    conn: Connection, spec: GrantSpec, verifier: str, timeout_ms: int
) -> None:
    role = sql.Identifier(spec.role_name)
    conn.execute(_REDEEM_JTI, [spec.jti, spec.token_expires_at or spec.expires_at])
    conn.execute(
        _CREATE_ROLE.format(
            role=role,
            limit=sql.Literal(CONNECTION_LIMIT),
            verifier=sql.Literal(verifier),
            until=sql.Literal(spec.expires_at.astimezone(UTC).isoformat()),
        )
    )
    conn.execute(
        sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(
            role, sql.Literal(timeout_ms)
        )
    )
    for group in spec.group_roles:
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), role))
    conn.execute(
        _INSERT_GRANT,
        [
            spec.role_name,
            spec.jti,
            spec.clinician_sub,
            spec.rar_type,
            spec.action,
            spec.resource_id,
            spec.stepped_up,
            spec.expires_at,
            spec.change_sha256,
        ],
    )


def _role_oid(conn: Connection, role_name: str) -> int | None:
    row = conn.execute(_ROLE_OID, [role_name]).fetchone()
    return int(row[0]) if row else None


class _Dropped(enum.Enum):
    YES = "yes"
    GONE = "gone"
    STUCK = "stuck"


def _drop_role(conn: Connection, role_name: str) -> _Dropped:
    """Drop the role (if it still exists) and its grant row, in the caller's txn.

    The advisory lock serialises revokes of one role across processes (a second
    stand-in, a reaper): the loser finds the role gone and only tidies the row.
    The grant row goes even when the role cannot (it owns objects in another
    database, where ``DROP OWNED`` from here cannot reach).
    """
    conn.execute(_ADVISORY_LOCK, [role_name])
    oid = _role_oid(conn, role_name)
    outcome = _Dropped.GONE
    if oid is not None:
        _drop_owned(conn, role_name, oid)
        try:
            with conn.transaction():
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role_name)))
            outcome = _Dropped.YES
        except psycopg.errors.DependentObjectsStillExist:
            outcome = _Dropped.STUCK
    conn.execute(_DELETE_GRANT, [role_name])
    return outcome


def _drop_role_at_once(
    conn: Connection, role_name: str, oid: int | None
) -> _Dropped | None:
    """:func:`_drop_role` without ``DROP OWNED``, then the sweep: one round trip.

    None, with everything rolled back, when the role owns something: ``DROP
    ROLE`` refuses (2BP01) a role with any entry in ``pg_shdepend`` (an object
    or a privilege, in any database), what :data:`_OWNS_ANYTHING` looks for,
    and the caller then takes the careful path. The oid is read after the
    advisory lock, in a statement of its own (a statement's snapshot predates
    a lock it takes), so the loser of a race reports the role gone. The sweep
    runs after the ``COMMIT``, for a session that raced the ``NOLOGIN``.
    """
    sweep = None
    try:
        with _pipelined(conn):
            conn.execute("BEGIN")
            conn.execute(_LOCK_TIMEOUT)
            conn.execute(_ADVISORY_LOCK, [role_name])
            found = conn.execute(_ROLE_OID, [role_name])
            conn.execute(
                sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role_name))
            )
            conn.execute(_DELETE_GRANT, [role_name])
            conn.execute("COMMIT")
            if oid is not None:
                sweep = conn.execute(_TERMINATE, [oid])
    except psycopg.errors.DependentObjectsStillExist:
        return None

    row = found.fetchone()
    dropped = int(row[0]) if row else None
    if sweep is not None and oid is not None:
        _await_exit(conn, [int(pid) for pid, sent in sweep.fetchall() if sent], oid)
    if dropped is not None and dropped != oid:
        _terminate_sessions(conn, dropped)  # made after the NOLOGIN looked for it
    return _Dropped.GONE if dropped is None else _Dropped.YES


def _disable_login(conn: Connection, role_name: str) -> int | None:
    """``NOLOGIN``, committed, then end every session; the oid, None if no role.

    One round trip when no statement is running: the ``COMMIT`` ends the
    ``ALTER ROLE``'s transaction before :data:`_STOP_SESSIONS` runs, so no new
    session starts once it has looked (one that had already passed the login
    check is the final sweep's, or, if still starting then, the reaper's).
    Idle sessions are terminated in that statement; a running statement is
    cancelled there, and its session is terminated only after
    :func:`_await_cancelled`.
    """
    try:
        with _pipelined(conn):
            conn.execute("BEGIN")
            conn.execute(
                sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role_name))
            )
            conn.execute("COMMIT")
            stop = conn.execute(_STOP_SESSIONS, {"role": role_name})
    except psycopg.errors.UndefinedObject:
        return None  # dropped meanwhile by another process: the rest is idempotent

    row = stop.fetchone()
    if row is None:
        return None
    oid = int(row[0])
    cancelled, terminated = [int(p) for p in row[1]], [int(p) for p in row[2]]
    if cancelled:
        _await_cancelled(conn, cancelled)
        _terminate_sessions(conn, oid)
    else:
        _await_exit(conn, terminated, oid)
    return oid


def _await_cancelled(conn: Connection, pids: list[int]) -> None:
    """Wait (briefly) until the cancelled statements stopped.

    The client then reads a cancellation (57014) before its session is
    terminated, so it can tell "my lease ended" from "the server went away".
    """
    deadline = time.monotonic() + CANCEL_WAIT_S
    while time.monotonic() < deadline:
        row = conn.execute(_STILL_ACTIVE, [pids]).fetchone()
        if row is None or not row[0]:
            return
        time.sleep(0.02)


def _terminate_sessions(conn: Connection, oid: int) -> None:
    """Terminate every backend of the role and wait for each to exit."""
    rows = conn.execute(_TERMINATE, [oid]).fetchall()
    _await_exit(conn, [int(pid) for pid, sent in rows if sent], oid)


def _await_exit(conn: Connection, pids: list[int], oid: int) -> None:
    """Wait until the terminated backends exited, :data:`TERMINATE_WAIT_MS` at most.

    Polled every :data:`EXIT_POLL_S`: ``pg_terminate_backend``'s own wait
    sleeps in 100 ms steps, so a backend that exits in 3 ms cost 100 ms.
    """
    deadline = time.monotonic() + TERMINATE_WAIT_MS / 1000
    while pids:
        row = conn.execute(_STILL_THERE, [pids, oid]).fetchone()
        if row is None or not row[0]:
            return
        if time.monotonic() >= deadline:
            log.warning("session_termination_slow", role_oid=oid)
            return
        time.sleep(EXIT_POLL_S)


@contextlib.contextmanager
def _pipelined(conn: Connection) -> Iterator[None]:
    """Send the block's statements together and wait once for all the results.

    After a failing statement the server skips the rest up to the sync; a
    transaction the block began is then left failed, so it is rolled back here
    and the connection is idle again (a broken one the pool closes).
    """
    try:
        with conn.pipeline():
            yield
    except psycopg.Error:
        failed = conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        if failed and not conn.broken:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
        raise


def _drop_owned(conn: Connection, role_name: str, oid: int) -> None:
    """Drop anything the role created, and its privileges.

    Dropped, not reassigned: whatever an ephemeral role made (a large object
    holding a chart, granted to PUBLIC, say) must not outlive the lease that
    row-level security scoped it to. PostgreSQL 15: ``DROP OWNED`` needs the
    privileges of the role, which ``CREATEROLE`` alone does not give; the engine
    grants itself membership first (allowed to ``CREATEROLE`` in 15). Ephemeral
    roles hold only group membership, so this path runs only when one created
    something: worth a warning.
    """
    row = conn.execute(_OWNS_ANYTHING, [oid]).fetchone()
    if row is None or not row[0]:
        return
    log.warning("ephemeral_role_owned_objects", role=role_name)
    role = sql.Identifier(role_name)
    conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))
    conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
