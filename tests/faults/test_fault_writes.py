"""Writes under faults: a committed note survives a PostgreSQL restart, a note cut
off mid-write by the restart is not written at all, and writing works again after.

The consent pushes are approved by a scripted device (the IdP's authenticator API).
Mid-write is made deterministic as for reads: an admin transaction holds a lock on
``clinical.notes``, so the call's INSERT waits there while the cluster restarts.
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING

import psycopg
import pytest
from faultkit import (
    Reply,
    ask,
    ask_in_background,
    assert_clear_failure,
    expire_grant_now,
    obo_roles,
    on_team_patient,
    table_locked,
    wait_for_waiting_obo_session,
    wait_until_no_obo_roles,
)

from trustloop.cli.approve_cmd import answer_push
from trustloop.devstack.postgres import start_cluster, stop_cluster

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.e2e


@contextmanager
def consenting_device(stack: Stack) -> Iterator[None]:
    """Approve every push for Dr. Chen while the block runs."""
    done = threading.Event()

    def run() -> None:
        while not done.is_set():
            answer_push(stack.settings, "achen", approve=True)
            time.sleep(0.1)

    device = threading.Thread(target=run, daemon=True)
    device.start()
    try:
        yield
    finally:
        done.set()
        device.join(timeout=30)


def _notes_saying(cluster: ClusterInfo, text: str) -> list[tuple[str, str]]:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        rows = conn.execute(
            "select author_sub, obo_jti from clinical.notes where text = %s", (text,)
        ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def _write_jti(reply: Reply) -> str:
    writes = [t for t in reply.tools if t.get("name") == "write_clinical_note"]
    assert [t.get("status") for t in writes] == ["success"], reply
    return str(writes[0]["obo_jti"])


def test_a_note_cut_off_by_a_restart_is_not_written_and_committed_ones_stay(
    stack: Stack, cluster_of: ClusterInfo, token: str
) -> None:
    _, name = on_team_patient(cluster_of)
    kept, cut, after = (f"fault test note {uuid.uuid4().hex[:8]}" for _ in range(3))

    with consenting_device(stack):
        committed = ask(stack, token, f"add a note to {name}'s chart: {kept}")
        kept_jti = _write_jti(committed)

        with table_locked(cluster_of, "clinical.notes"):
            asking, replies = ask_in_background(
                stack, token, f"add a note to {name}'s chart: {cut}"
            )
            role = wait_for_waiting_obo_session(cluster_of)
            stop_cluster(stack.settings.state_dir)
        start_cluster(stack.settings.state_dir)
        asking.join(timeout=60)

        assert_clear_failure(replies[0], "temporarily_unavailable")
        if role in obo_roles(cluster_of):
            expire_grant_now(cluster_of, role)
        wait_until_no_obo_roles(cluster_of)

        recovered = ask(stack, token, f"add a note to {name}'s chart: {after}")
        after_jti = _write_jti(recovered)

    assert _notes_saying(cluster_of, kept) == [("clin-achen", kept_jti)]
    assert _notes_saying(cluster_of, cut) == []
    assert _notes_saying(cluster_of, after) == [("clin-achen", after_jti)]
    wait_until_no_obo_roles(cluster_of)
