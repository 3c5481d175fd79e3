"""The lease engine under concurrency, and its revoke's hygiene, on real PostgreSQL."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING

import psycopg
import pytest
from lease_support import (
    LEASE_ENGINE,
    TEST_ENGINE_APP,
    admin_rows,
    grant_spec,
    lease_engine,
    leased,
    run_in_background,
    wait_for_session,
)

from trustloop.devstack.vault.lease_engine import (
    REVOKE_ATTEMPTS,
    Credential,
    GrantSpec,
    RevokeFailedError,
)
from trustloop.devstack.vault.scram_verifier import (
    ITERATIONS,
    random_password,
    scram_verifier,
)
from trustloop.identity.rhythm import translate
from trustloop.records import changes

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo

pytestmark = pytest.mark.integration

CONCURRENT = 32
STRANGE_PASSWORD = "p'a\"s s\\w;o=rd -- $$ %s {} E'\\x00' :x"


def _roles(cluster: ClusterInfo) -> set[str]:
    return {str(r[0]) for r in admin_rows(cluster, "SELECT rolname FROM pg_roles")}


def _patients(cluster: ClusterInfo) -> list[str]:
    rows = admin_rows(
        cluster, "SELECT id FROM clinical.patients WHERE NOT sensitive ORDER BY id"
    )
    return [str(r[0]) for r in rows]


def _engine_sessions(cluster: ClusterInfo) -> int:
    rows = admin_rows(
        cluster,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE usename = %s AND application_name = %s",
        LEASE_ENGINE,
        TEST_ENGINE_APP,
    )
    return int(rows[0][0])


def _spec(patient: str, index: int) -> GrantSpec:
    """Reads, notes and medication changes mixed, as the tools would ask."""
    kind = index % 3
    if kind == 0:
        return grant_spec(patient, "read")
    digest = changes.sha256_hex(f"change {index}")
    action = "write_note" if kind == 1 else "update_medication"
    return grant_spec(patient, action, change_sha256=digest)


def test_32_concurrent_mints_all_succeed_and_leave_pg_roles_as_it_was(
    cluster: ClusterInfo,
) -> None:
    patients = _patients(cluster)
    specs = [_spec(patients[i % len(patients)], i) for i in range(CONCURRENT)]
    before = _roles(cluster)
    barrier = threading.Barrier(CONCURRENT)

    with lease_engine(cluster) as engine:

        def mint(spec: GrantSpec) -> Credential:
            barrier.wait()
            return engine.mint(spec, lambda _: None)

        with ThreadPoolExecutor(CONCURRENT) as pool:
            minted = list(pool.map(mint, specs))
        during = _roles(cluster)
        grants = admin_rows(cluster, "SELECT count(*) FROM access.grants")
        with ThreadPoolExecutor(CONCURRENT) as pool:
            revoked = list(pool.map(engine.revoke, [c.username for c in minted]))

    assert {c.username for c in minted} == {s.role_name for s in specs}
    assert during - before == {s.role_name for s in specs}
    assert grants == [(CONCURRENT,)]
    assert revoked == [True] * CONCURRENT
    assert _roles(cluster) == before
    assert admin_rows(cluster, "SELECT count(*) FROM access.grants") == [(0,)]


def test_32_concurrent_tool_cycles_mint_use_and_revoke_without_a_trace(
    cluster: ClusterInfo,
) -> None:
    """Mint, connect, query and revoke on 32 threads at once, as 32 tool calls."""
    patients = _patients(cluster)
    before = _roles(cluster)
    barrier = threading.Barrier(CONCURRENT)

    with lease_engine(cluster) as engine:

        def cycle(index: int) -> tuple[str, ...]:
            spec = grant_spec(patients[index % len(patients)], "read")
            barrier.wait()
            with leased(engine, spec) as role, role.connect(cluster) as conn:
                row = conn.execute("SELECT id FROM clinical.patients").fetchone()
            return tuple(row or ())

        with ThreadPoolExecutor(CONCURRENT) as pool:
            seen = list(pool.map(cycle, range(CONCURRENT)))

    assert seen == [(patients[i % len(patients)],) for i in range(CONCURRENT)]
    assert _roles(cluster) == before


def test_each_role_gets_a_statement_timeout_shorter_than_its_lease(
    cluster: ClusterInfo,
) -> None:
    patient = _patients(cluster)[0]
    spec = grant_spec(patient, "read")
    lease_ms = (spec.expires_at.timestamp() - time.time()) * 1000

    with (
        lease_engine(cluster) as engine,
        leased(engine, spec) as role,
        role.connect(cluster) as conn,
    ):
        row = conn.execute(
            "SELECT setting::int, source FROM pg_settings"
            " WHERE name = 'statement_timeout'"
        ).fetchone()
        stored = admin_rows(
            cluster,
            "SELECT s.setconfig FROM pg_db_role_setting s"
            " JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = %s",
            role.role,
        )

    assert row is not None
    assert row[1] == "user"
    assert lease_ms / 2 <= row[0] < lease_ms
    assert stored == [([f"statement_timeout={row[0]}"],)]
    assert admin_rows(
        cluster,
        "SELECT count(*) FROM pg_db_role_setting s"
        " LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE r.oid IS NULL",
    ) == [(0,)]


def test_password_with_quotes_backslashes_and_sql_logs_in_over_scram(
    cluster: ClusterInfo,
) -> None:
    patient = _patients(cluster)[0]

    with (
        lease_engine(cluster, new_password=lambda: STRANGE_PASSWORD) as engine,
        leased(engine, grant_spec(patient, "read")) as role,
    ):
        with role.connect(cluster) as conn:
            who = conn.execute("SELECT session_user").fetchone()
        with pytest.raises(psycopg.OperationalError) as wrong:
            psycopg.connect(cluster.tcp_conninfo(role.role, STRANGE_PASSWORD + "x"))

    assert role.password == STRANGE_PASSWORD
    assert who == (role.role,)
    assert STRANGE_PASSWORD not in str(wrong.value)
    assert STRANGE_PASSWORD not in repr(Credential(role.role, STRANGE_PASSWORD))


def test_stored_verifier_is_the_engines_with_one_iteration(
    cluster: ClusterInfo,
) -> None:
    """pg_authid holds the verifier the engine computed (one PBKDF2 round), and
    libpq logs in against it: recomputing it from the password and the stored
    salt gives the stored value exactly."""
    patient = _patients(cluster)[0]

    with (
        lease_engine(cluster) as engine,
        leased(engine, grant_spec(patient, "read")) as role,
    ):
        with role.connect(cluster) as conn:
            who = conn.execute("SELECT session_user").fetchone()
        ((stored,),) = admin_rows(
            cluster, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", role.role
        )

    iterations, salt = str(stored).split("$")[1].split(":")
    assert who == (role.role,)
    assert int(iterations) == ITERATIONS == 1
    assert stored == scram_verifier(
        role.password, salt=base64.b64decode(salt), iterations=ITERATIONS
    )
    assert role.password not in str(stored)


def test_a_password_outside_printable_ascii_mints_nothing(
    cluster: ClusterInfo,
) -> None:
    """SASLprep would change it; the engine refuses before any statement."""
    patient = _patients(cluster)[0]
    spec = grant_spec(patient, "read")
    called: list[object] = []

    with (
        lease_engine(cluster, new_password=lambda: "pässwörd-\t-💊") as engine,
        pytest.raises(ValueError, match="printable ASCII"),
    ):
        engine.mint(spec, called.append)

    assert called == []
    assert spec.role_name not in _roles(cluster)


def test_default_passwords_are_random_and_use_every_kind_of_character(
    cluster: ClusterInfo,
) -> None:
    made = {random_password() for _ in range(200)}
    joined = "".join(made)

    assert len(made) == 200
    assert all(len(p) >= 32 for p in made)
    assert any(c in joined for c in "'\"\\")
    assert any(c.isdigit() for c in joined)


def test_revoking_twice_is_harmless(cluster: ClusterInfo) -> None:
    patient = _patients(cluster)[0]
    before = _roles(cluster)

    with lease_engine(cluster) as engine:
        credential = engine.mint(grant_spec(patient, "read"), lambda _: None)
        first = engine.revoke(credential.username)
        second = engine.revoke(credential.username)

    assert (first, second) == (True, False)
    assert _roles(cluster) == before


def test_revoke_retries_a_transient_failure_and_leaks_no_connection(
    cluster: ClusterInfo,
) -> None:
    """A revoke blocked past its lock timeout is retried with backoff."""
    patient = _patients(cluster)[0]
    sleeps: list[float] = []

    with lease_engine(cluster, sleep=sleeps.append) as engine:
        credential = engine.mint(grant_spec(patient, "read"), lambda _: None)
        with (
            _role_lock_held(cluster, credential.username),
            pytest.raises(RevokeFailedError),
        ):
            engine.revoke(credential.username)
        sessions_after_failure = _engine_sessions(cluster)
        removed = engine.revoke(credential.username)

    assert len(sleeps) == REVOKE_ATTEMPTS - 1
    assert sleeps == sorted(sleeps)
    assert sleeps[0] < sleeps[-1]
    assert sessions_after_failure <= 1
    assert removed is True
    assert _no_engine_sessions_left(cluster)


@contextmanager
def _role_lock_held(cluster: ClusterInfo, role: str) -> Iterator[None]:
    """Hold the advisory lock a revoke of ``role`` takes, from another session."""
    with psycopg.connect(cluster.admin_conninfo(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (role,))
        yield


def _no_engine_sessions_left(cluster: ClusterInfo) -> bool:
    """Closed connections leave ``pg_stat_activity`` a moment later."""
    deadline = time.monotonic() + 5
    while _engine_sessions(cluster) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _engine_sessions(cluster) == 0


def test_engine_uses_its_pool_and_leaves_at_most_its_idle_connections(
    cluster: ClusterInfo,
) -> None:
    patient = _patients(cluster)[0]
    with lease_engine(cluster) as engine:
        for _ in range(10):
            credential = engine.mint(grant_spec(patient, "read"), lambda _: None)
            engine.revoke(credential.username)
        idle = _engine_sessions(cluster)
    assert 1 <= idle <= 4
    assert _no_engine_sessions_left(cluster)


def test_statement_running_when_its_lease_is_revoked_reads_as_an_expired_credential(
    cluster: ClusterInfo,
) -> None:
    """The reaper cancels first (57014), so the tool can say why; a server
    restart's termination (57P01) stays "temporarily unavailable"."""
    patient = _patients(cluster)[0]

    with (
        lease_engine(cluster) as engine,
        psycopg.connect(cluster.admin_conninfo()) as locker,
    ):
        credential = engine.mint(grant_spec(patient, "read"), lambda _: None)
        locker.execute("LOCK TABLE clinical.observations IN ACCESS EXCLUSIVE MODE")
        conn = psycopg.connect(
            cluster.tcp_conninfo(credential.username, credential.password),
            autocommit=True,
        )

        running, failures = run_in_background(
            conn, "SELECT count(*) FROM clinical.observations"
        )
        wait_for_session(cluster, credential.username, "waiting for a lock")
        engine.revoke(credential.username)
        running.join(timeout=10)
        conn.close()

    assert len(failures) == 1, failures
    assert isinstance(failures[0], psycopg.errors.QueryCanceled), repr(failures[0])
    assert str(translate(failures[0])) == (
        "invalid_token: the database credential expired"
    )
    restart = psycopg.errors.AdminShutdown("terminating connection")
    assert str(translate(restart)) == "temporarily_unavailable: database"


def test_database_refusals_read_as_access_denied() -> None:
    refused = psycopg.errors.InsufficientPrivilege("the database refused the write")
    assert str(translate(refused)) == "access_denied: the database refused the write"
