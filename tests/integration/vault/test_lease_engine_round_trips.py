"""The lease engine's round trips to PostgreSQL, and the paths that cut them.

Round trips are counted by a unix-socket proxy in front of the cluster that
reads the client's side of the wire protocol: a client waits for the server only
after a ``Sync`` (extended protocol, pipelined or not) or a simple ``Query``, so
each of those is one round trip. Counting messages, not turns of speech, keeps
the count exact however the bytes are split or interleaved with the server's
answers.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from lease_support import (
    LEASE_ENGINE,
    admin_rows,
    grant_spec,
    leased,
    run_in_background,
    wait_for_session,
)
from psycopg import sql
from psycopg.conninfo import make_conninfo

from trustloop.devstack.vault.lease_engine import GrantSpec, LeaseEngine
from trustloop.devstack.vault.pgpool import ConnectionPool

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from trustloop.devstack.postgres import ClusterInfo

pytestmark = pytest.mark.integration


_WAITS = frozenset(b"SQ")  # Sync, simple Query: the client then waits
_NOT_STARTUP = {80877103, 80877104}  # SSLRequest, GSSENCRequest codes


class _ClientMessages:
    """Splits the client's byte stream into protocol messages; counts waits."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._started = False

    def feed(self, data: bytes) -> int:
        """Waits (Sync or Query messages) completed by ``data``."""
        self._buffer += data
        waits = 0
        while True:
            if not self._started:  # untyped: int32 length, int32 code, ...
                if len(self._buffer) < 8:
                    return waits
                length = int.from_bytes(self._buffer[:4], "big")
                code = int.from_bytes(self._buffer[4:8], "big")
                if len(self._buffer) < length:
                    return waits
                self._started = code not in _NOT_STARTUP
            else:  # type byte, int32 length (counting itself), body
                if len(self._buffer) < 5:
                    return waits
                length = 1 + int.from_bytes(self._buffer[1:5], "big")
                if len(self._buffer) < length:
                    return waits
                waits += self._buffer[0] in _WAITS
            del self._buffer[:length]


class RoundTrips:
    """Unix-socket proxy to the cluster; counts the client's waits."""

    def __init__(self, cluster: ClusterInfo) -> None:
        self._target = str(cluster.socket_dir / f".s.PGSQL.{cluster.port}")
        self.dir = Path(tempfile.mkdtemp(prefix="rt-"))
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.dir / f".s.PGSQL.{cluster.port}"))
        self._listener.listen()
        self._lock = threading.Lock()
        self._waits = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def count(self) -> int:
        with self._lock:
            return self._waits

    def close(self) -> None:
        self._listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.connect(self._target)
        pumps = [
            threading.Thread(
                target=self._pump, args=(client, server, _ClientMessages())
            ),
            threading.Thread(target=self._pump, args=(server, client, None)),
        ]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        client.close()
        server.close()

    def _pump(
        self, src: socket.socket, dst: socket.socket, messages: _ClientMessages | None
    ) -> None:
        while data := _receive(src):
            if messages is not None:
                waits = messages.feed(data)
                with self._lock:
                    self._waits += waits
            try:
                dst.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _receive(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


@pytest.fixture
def round_trips(cluster: ClusterInfo) -> Iterator[RoundTrips]:
    proxy = RoundTrips(cluster)
    yield proxy
    proxy.close()


@contextmanager
def counted_engine(cluster: ClusterInfo, proxy: RoundTrips) -> Iterator[LeaseEngine]:
    """An engine whose connections pass through ``proxy``; its pool is warm."""
    conninfo = make_conninfo(cluster.admin_conninfo(LEASE_ENGINE), host=str(proxy.dir))
    pool = ConnectionPool(conninfo)
    try:
        engine = LeaseEngine(pool)
        warm = _spec(cluster)
        engine.mint(warm, lambda _: None)
        engine.revoke(warm.role_name)
        yield engine
    finally:
        pool.close()


def _spec(cluster: ClusterInfo) -> GrantSpec:
    rows = admin_rows(
        cluster, "SELECT id FROM clinical.patients WHERE NOT sensitive ORDER BY id"
    )
    return grant_spec(str(rows[0][0]), "read")


def _trips(proxy: RoundTrips, action: Callable[[], object]) -> int:
    """Round trips ``action`` made (the proxy counts a message before
    forwarding it, so every one is counted when ``action`` returns)."""
    before = proxy.count
    action()
    return proxy.count - before


def _role_exists(cluster: ClusterInfo, role: str) -> bool:
    return bool(admin_rows(cluster, "SELECT 1 FROM pg_roles WHERE rolname = %s", role))


def _grant_rows(cluster: ClusterInfo, role: str) -> int:
    rows = admin_rows(
        cluster, "SELECT count(*) FROM access.grants WHERE role_name = %s", role
    )
    return int(rows[0][0])


def test_mint_costs_three_round_trips_whatever_the_number_of_groups(
    cluster: ClusterInfo, round_trips: RoundTrips
) -> None:
    """BEGIN, every statement of the role at once, COMMIT."""
    spec = _spec(cluster)
    many = grant_spec(
        spec.resource_id,
        "read",
        groups=(
            "clinical_reader",
            "clinical_note_writer",
            "clinical_medication_writer",
        ),
    )

    with counted_engine(cluster, round_trips) as engine:
        one_group = _trips(round_trips, lambda: engine.mint(spec, lambda _: None))
        three_groups = _trips(round_trips, lambda: engine.mint(many, lambda _: None))
        engine.revoke(spec.role_name)
        engine.revoke(many.role_name)

    assert one_group <= 3
    assert three_groups == one_group


def test_revoking_a_role_without_sessions_costs_two_round_trips(
    cluster: ClusterInfo, round_trips: RoundTrips
) -> None:
    with counted_engine(cluster, round_trips) as engine:
        spec = _spec(cluster)
        engine.mint(spec, lambda _: None)
        trips = _trips(round_trips, lambda: engine.revoke(spec.role_name))

    assert trips == 2
    assert not _role_exists(cluster, spec.role_name)
    assert _grant_rows(cluster, spec.role_name) == 0


def test_revoke_ends_idle_sessions_and_drops_the_role(cluster: ClusterInfo) -> None:
    """An open idle session is terminated in the first round trip's statement
    and awaited by polling (``pg_terminate_backend(pid, timeout)`` would look
    every 100 ms; bench/rhythm.py measures the difference, not this test)."""
    ended: list[bool] = []
    gone: list[bool] = []

    with _engine(cluster) as engine:
        for _ in range(3):
            spec = _spec(cluster)
            with leased(engine, spec) as role, role.connect(cluster) as conn:
                conn.execute("SELECT 1")
                engine.revoke(spec.role_name)
                try:
                    conn.execute("SELECT 1")
                except psycopg.OperationalError:
                    ended.append(True)
                else:
                    ended.append(False)
                gone.append(not _role_exists(cluster, spec.role_name))

    assert ended == [True] * 3
    assert gone == [True] * 3


def test_failing_statement_rolls_back_the_mint_before_before_commit_runs(
    cluster: ClusterInfo, round_trips: RoundTrips
) -> None:
    """A GRANT of a missing group fails after CREATE ROLE was sent: nothing
    stays, the audit hook is never called, and the engine keeps working."""
    spec = _spec(cluster)
    broken = grant_spec(
        spec.resource_id, "read", groups=("clinical_reader", "no_such_group")
    )
    called: list[object] = []

    with counted_engine(cluster, round_trips) as engine:
        with pytest.raises(psycopg.errors.UndefinedObject):
            engine.mint(broken, called.append)
        engine.mint(spec, called.append)
        revoked = engine.revoke(spec.role_name)

    assert len(called) == 1
    assert revoked is True
    assert not _role_exists(cluster, broken.role_name)
    assert _grant_rows(cluster, broken.role_name) == 0


def test_revoke_of_a_grant_row_without_its_role_removes_the_row(
    cluster: ClusterInfo, round_trips: RoundTrips
) -> None:
    """The role is gone (another process dropped it): ``NOLOGIN`` fails, the
    engine leaves that failed transaction and still deletes the row."""
    with counted_engine(cluster, round_trips) as engine:
        spec = _spec(cluster)
        engine.mint(spec, lambda _: None)
        with psycopg.connect(cluster.admin_conninfo(), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP ROLE {}").format(sql.Identifier(spec.role_name))
            )
        removed = engine.revoke(spec.role_name)
        again = _spec(cluster)
        engine.mint(again, lambda _: None)
        second = engine.revoke(again.role_name)

    assert removed is False
    assert _grant_rows(cluster, spec.role_name) == 0
    assert second is True


def test_concurrent_revokes_from_two_engines_drop_the_role_once(
    cluster: ClusterInfo,
) -> None:
    """Two stand-ins (two pools) revoke one role at once: one drops it, the
    other finds it gone; neither fails."""
    spec = _spec(cluster)
    pools = [ConnectionPool(cluster.admin_conninfo(LEASE_ENGINE)) for _ in range(2)]
    engines = [LeaseEngine(pool) for pool in pools]
    barrier = threading.Barrier(2)

    def revoke(engine: LeaseEngine) -> bool:
        barrier.wait()
        return engine.revoke(spec.role_name)

    try:
        engines[0].mint(spec, lambda _: None)
        with ThreadPoolExecutor(2) as executor:
            outcomes = list(executor.map(revoke, engines))
    finally:
        for pool in pools:
            pool.close()

    assert sorted(outcomes) == [False, True]
    assert not _role_exists(cluster, spec.role_name)
    assert _grant_rows(cluster, spec.role_name) == 0


def test_revoke_leaves_another_roles_running_statement_alone(
    cluster: ClusterInfo,
) -> None:
    """Cancelling and terminating are filtered to the revoked role's sessions."""
    spec, bystander = _spec(cluster), _spec(cluster)
    with (
        _engine(cluster) as engine,
        leased(engine, bystander) as other,
        other.connect(cluster) as busy,
        leased(engine, spec) as role,
        role.connect(cluster),
    ):
        running, results = run_in_background(busy, "SELECT 1 FROM pg_sleep(0.5)")
        wait_for_session(cluster, bystander.role_name, "running")
        engine.revoke(spec.role_name)
        running.join(timeout=10)
        after = busy.execute("SELECT 2").fetchone()

    assert results == [(1,)]
    assert after == (2,)


@contextmanager
def _engine(cluster: ClusterInfo) -> Iterator[LeaseEngine]:
    pool = ConnectionPool(cluster.admin_conninfo(LEASE_ENGINE))
    try:
        yield LeaseEngine(pool)
    finally:
        pool.close()
