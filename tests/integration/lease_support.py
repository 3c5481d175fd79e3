"""Leases minted by the real lease engine, for tests that act as the ephemeral role.

``leased(...)`` mints a role the way the ``verify-rar`` engine does (the group
roles of :data:`trustloop.devstack.vault.verify_rar.ROLES` unless a test asks for
others), yields its credential and revokes it afterwards.
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import make_conninfo

from trustloop.devstack.vault.lease_engine import GrantSpec, LeaseEngine, role_name_for
from trustloop.devstack.vault.pgpool import ConnectionPool
from trustloop.devstack.vault.verify_rar import ROLES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from trustloop.devstack.postgres import ClusterInfo

LEASE_ENGINE = "trustloop_lease_engine"
# The engines made here name their sessions, so a test counts only its own and
# not those of a Vault stand-in another test module left running.
TEST_ENGINE_APP = "trustloop-test-lease-engine"


@dataclass(frozen=True)
class Leased:
    """A minted ephemeral role: its credential and its grant's ``jti``."""

    role: str
    password: str = field(repr=False)
    jti: str
    sub: str

    def connect(self, cluster: ClusterInfo) -> psycopg.Connection[Any]:
        conninfo = cluster.tcp_conninfo(self.role, self.password, self.jti)
        return psycopg.connect(conninfo, autocommit=True)


@contextmanager
def lease_engine(
    cluster: ClusterInfo,
    *,
    new_password: Callable[[], str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[LeaseEngine]:
    conninfo = make_conninfo(
        cluster.admin_conninfo(LEASE_ENGINE), application_name=TEST_ENGINE_APP
    )
    pool = ConnectionPool(conninfo)
    try:
        yield LeaseEngine(pool, new_password=new_password, sleep=sleep)
    finally:
        pool.close()


def grant_spec(
    patient_id: str,
    action: str,
    *,
    change_sha256: str | None = None,
    groups: tuple[str, ...] | None = None,
    stepped_up: bool = False,
    ttl: timedelta = timedelta(seconds=60),
    sub: str = "clin-achen",
    rar_type: str = "patient_record",
) -> GrantSpec:
    jti = str(uuid.uuid4())
    return GrantSpec(
        role_name=role_name_for(jti),
        jti=jti,
        clinician_sub=sub,
        rar_type=rar_type,
        action=action,
        resource_id=patient_id,
        stepped_up=stepped_up,
        expires_at=datetime.now(UTC) + ttl,
        group_roles=groups or ROLES["clinical"][f"{rar_type}|{action}"],
        change_sha256=change_sha256,
    )


@contextmanager
def leased(engine: LeaseEngine, spec: GrantSpec) -> Iterator[Leased]:
    """Mint ``spec`` through the engine; revoke it on the way out."""
    credential = engine.mint(spec, lambda _: None)
    try:
        yield Leased(
            credential.username, credential.password, spec.jti, spec.clinician_sub
        )
    finally:
        engine.revoke(credential.username)


def admin_rows(cluster: ClusterInfo, query: str, *params: object) -> list[Any]:
    """Rows of a superuser query (RLS bypassed): what is really stored."""
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        return conn.execute(query.encode(), params).fetchall()


def run_in_background(
    conn: psycopg.Connection[Any], query: str
) -> tuple[threading.Thread, list[object]]:
    """Start ``query`` on ``conn`` in a thread; its first row or its psycopg error
    lands in the list. Join the thread before reading the list."""
    outcomes: list[object] = []

    def run() -> None:
        try:
            outcomes.append(conn.execute(query.encode()).fetchone())
        except psycopg.Error as exc:
            outcomes.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcomes


_SESSION_STATES = {
    "running": "SELECT 1 FROM pg_stat_activity WHERE usename = %s AND state = 'active'",
    "waiting for a lock": (
        "SELECT 1 FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock'"
    ),
}


def wait_for_session(cluster: ClusterInfo, role: str, state: str) -> None:
    """Until a session of ``role`` is in ``state`` (a key of :data:`_SESSION_STATES`)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if admin_rows(cluster, _SESSION_STATES[state], role):
            return
        time.sleep(0.02)
    raise AssertionError(f"no session of the role was {state} within 10 s")
