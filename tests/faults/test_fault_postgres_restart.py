"""PostgreSQL restarted in the middle of a chart query: the call fails closed, the
lease still ends, and the next question is answered.

Mid-call is made deterministic: an admin transaction holds a lock on
``clinical.observations``, so the call's query waits there (seen in
``pg_stat_activity``) while the cluster is stopped (fast shutdown) and started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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

from trustloop.devstack.postgres import start_cluster, stop_cluster

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.e2e


def test_postgres_restart_mid_query_fails_closed_and_recovers(
    stack: Stack, cluster_of: ClusterInfo, token: str
) -> None:
    question = chart_question(cluster_of)
    assert ask(stack, token, question).succeeded
    with table_locked(cluster_of, "clinical.observations"):
        asking, replies = ask_in_background(stack, token, question)
        role = wait_for_waiting_obo_session(cluster_of)
        stop_cluster(stack.settings.state_dir)
    start_cluster(stack.settings.state_dir)
    asking.join(timeout=60)

    assert_clear_failure(replies[0], "temporarily_unavailable")
    # The revoke ran while the server was down: the lease ends at the OBO's exp
    # (60 s); bring that forward and let the Vault reaper remove the role.
    if role in obo_roles(cluster_of):
        expire_grant_now(cluster_of, role)
    wait_until_no_obo_roles(cluster_of)
    after = ask(stack, token, question)
    assert after.succeeded, after
    wait_until_no_obo_roles(cluster_of)
