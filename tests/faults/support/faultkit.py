"""Helpers for the fault tests: ask and read the reply, watch ``pg_roles``, hold a lock.

The stack is shared by every fault test (``conftest.stack``): each restores the
part it stopped before it ends.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg

from trustloop.app.runtime_client import InvocationError, invoke

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.devstack.stack import Stack

ACHEN = "clin-achen"
# The reaper runs every 2 s; a revoke waits up to 2 s for sessions to end.
REAP_WAIT_S = 15.0
STEP_UP_TIMEOUT_S = 3.0
# A validator refetches a JWKS at most every 5 s; one more second of slack.
JWKS_REFETCH_WAIT_S = 6.0


@dataclass
class Reply:
    """What one question produced: text, tool frames, or the final error frame."""

    text: str = ""
    tools: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def said(self) -> str:
        """Everything the clinician sees: the answer text or the error."""
        return self.error if self.error is not None else self.text

    @property
    def succeeded(self) -> bool:
        return self.error is None and all(
            t.get("status") == "success" for t in self.tools
        )


def ask(stack: Stack, token: str, question: str, timeout: float = 60.0) -> Reply:
    """Ask through the runtime; an ``{"error": ...}`` frame becomes ``Reply.error``."""
    reply = Reply()
    frames = invoke(
        stack.settings.runtime_url,
        question,
        access_token=token,
        session_id=str(uuid.uuid4()),
        timeout=timeout,
    )
    try:
        for frame in frames:
            if frame.get("type") == "text":
                reply.text += str(frame.get("text", ""))
            elif frame.get("type") == "tool":
                reply.tools.append(frame)
    except InvocationError as exc:
        reply.error = str(exc)
    return reply


def ask_in_background(
    stack: Stack, token: str, question: str
) -> tuple[threading.Thread, list[Reply]]:
    """Start asking ``question`` on a thread; its reply lands in the list."""
    replies: list[Reply] = []
    asking = threading.Thread(
        target=lambda: replies.append(ask(stack, token, question))
    )
    asking.start()
    return asking, replies


def ask_until_answered(
    stack: Stack, token: str, question: str, within: float = JWKS_REFETCH_WAIT_S
) -> Reply:
    """Ask until a question succeeds; each miss meanwhile must fail clearly.

    For the faults whose repair a validator learns about through its JWKS, which
    it refetches on an unknown ``kid`` at most every 5 s (docs/contracts.md).
    """
    deadline = time.monotonic() + within
    reply = ask(stack, token, question)
    while not reply.succeeded and time.monotonic() < deadline:
        assert_clear_failure(reply, "unavailable", "refused")
        time.sleep(1.0)
        reply = ask(stack, token, question)
    return reply


def assert_clear_failure(reply: Reply, *phrases: str) -> None:
    """Failed closed: no chart data, no traceback, and one of ``phrases`` said."""
    said = reply.said
    assert not reply.succeeded, reply
    assert "Traceback" not in said, said
    assert "Chart for" not in said, said
    assert any(p in said for p in phrases), said


def on_team_patient(cluster: ClusterInfo) -> tuple[str, str]:
    """``(id, name)`` of a non-sensitive patient on Dr. Chen's care team."""
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        row = conn.execute(
            "select p.id, p.name from clinical.patients p "
            "join clinical.care_team_members m on m.patient_id = p.id "
            "where m.clinician_sub = %s and not p.sensitive order by p.name limit 1",
            (ACHEN,),
        ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


def restricted_patient(cluster: ClusterInfo) -> tuple[str, str]:
    """``(id, name)`` of a restricted (sensitive) patient on Dr. Chen's care team."""
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        row = conn.execute(
            "select p.id, p.name from clinical.patients p "
            "join clinical.care_team_members m on m.patient_id = p.id "
            "where m.clinician_sub = %s and p.sensitive order by p.name limit 1",
            (ACHEN,),
        ).fetchone()
    assert row is not None, "the demo data has no restricted patient for achen"
    return str(row[0]), str(row[1])


def chart_question(cluster: ClusterInfo) -> str:
    patient_id, _ = on_team_patient(cluster)
    return f"show me the chart of Patient/{patient_id}"


def obo_roles(cluster: ClusterInfo) -> list[str]:
    """Every ephemeral role that exists right now."""
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        rows = conn.execute(
            r"select rolname from pg_roles where rolname like 'obo\_%%' order by 1"
        ).fetchall()
    return [str(r[0]) for r in rows]


def wait_until_no_obo_roles(cluster: ClusterInfo, timeout: float = REAP_WAIT_S) -> None:
    """Poll ``pg_roles`` until no ``obo_`` role is left; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    left = obo_roles(cluster)
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = obo_roles(cluster)
    assert left == [], f"ephemeral roles left after {timeout:.0f} s: {left}"


@contextlib.contextmanager
def table_locked(cluster: ClusterInfo, table: str) -> Iterator[psycopg.Connection[Any]]:
    """Hold ``ACCESS EXCLUSIVE`` on ``table``: a chart query then waits mid-call."""
    conn = psycopg.connect(cluster.admin_conninfo())
    try:
        conn.execute(f"lock table {table} in access exclusive mode")  # a fixed name
        yield conn
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        conn.close()


def wait_for_waiting_obo_session(cluster: ClusterInfo, timeout: float = 20.0) -> str:
    """The role of an ephemeral session blocked on a lock: the call is mid-query."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(cluster.admin_conninfo()) as conn:
            row = conn.execute(
                r"select usename from pg_stat_activity where usename like 'obo\_%%'"
                " and wait_event_type = 'Lock' limit 1"
            ).fetchone()
        if row is not None:
            return str(row[0])
        time.sleep(0.05)
    raise AssertionError("no ephemeral session reached the locked table")


def expire_grant_now(cluster: ClusterInfo, role: str) -> None:
    """Bring a lease's end forward to now (its grant row), as if 60 s had passed."""
    with psycopg.connect(cluster.admin_conninfo(), autocommit=True) as conn:
        conn.execute(
            "update access.grants set expires_at = now() where role_name = %s",
            (role,),
        )
