"""The MCP server killed (SIGKILL) in the middle of a tool call: the question fails
closed, the orphaned lease is reaped when it ends (no role, grant row, session or
role setting left), and a restarted server answers.

Mid-call is deterministic: the call's chart query waits on a lock the test holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
import pytest
from faultkit import (
    ask,
    ask_in_background,
    assert_clear_failure,
    chart_question,
    expire_grant_now,
    obo_roles,
    table_locked,
    wait_for_waiting_obo_session,
    wait_until_no_obo_roles,
)

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.e2e


def test_mcp_killed_mid_call_fails_closed_and_its_lease_is_reaped(
    stack: Stack, cluster_of: ClusterInfo, token: str
) -> None:
    question = chart_question(cluster_of)
    with table_locked(cluster_of, "clinical.observations"):
        asking, replies = ask_in_background(stack, token, question)
        role = wait_for_waiting_obo_session(cluster_of)
        stack.stop_part("mcp", kill=True)
    asking.join(timeout=60)

    assert_clear_failure(replies[0], "unavailable", "failed")
    # Nobody is left to revoke: the role stays until its lease ends (the OBO's
    # exp, 60 s), which is brought forward here; the Vault reaper removes it.
    assert role in obo_roles(cluster_of)
    expire_grant_now(cluster_of, role)
    wait_until_no_obo_roles(cluster_of)
    assert _traces_of(cluster_of, role) == (0, 0, 0)

    stack.start_part("mcp")
    after = ask(stack, token, question)
    assert after.succeeded, after
    wait_until_no_obo_roles(cluster_of)


def _traces_of(cluster: ClusterInfo, role: str) -> tuple[int, int, int]:
    """Grant rows, sessions and per-role settings the role left behind."""
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM access.grants WHERE role_name = %(r)s),"
            " (SELECT count(*) FROM pg_stat_activity WHERE usename = %(r)s),"
            " (SELECT count(*) FROM pg_db_role_setting s"
            "   LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE r.oid IS NULL)",
            {"r": role},
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])
