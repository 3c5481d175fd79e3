"""A lease ending in the middle of a query: the Vault reaper revokes it, which
cancels the running statement and ends the role's session, so the query fails
closed, the tool says the credential expired, and nothing outlives the lease.

The lease's end is brought forward through its grant row (the reaper reads expiry
from ``access.grants``) while the query waits on a lock the test holds.
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
    table_locked,
    wait_for_waiting_obo_session,
    wait_until_no_obo_roles,
)

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.e2e


def test_lease_expiring_mid_query_ends_the_session_and_fails_closed(
    stack: Stack, cluster_of: ClusterInfo, token: str
) -> None:
    question = chart_question(cluster_of)
    with table_locked(cluster_of, "clinical.observations"):
        asking, replies = ask_in_background(stack, token, question)
        role = wait_for_waiting_obo_session(cluster_of)
        expire_grant_now(cluster_of, role)
        wait_until_no_obo_roles(cluster_of)
    asking.join(timeout=60)

    assert_clear_failure(replies[0], "the database credential expired")
    vault_audit = (stack.settings.audit_dir / "vault.jsonl").read_text()
    assert '"lease_expired"' in vault_audit
    assert role in vault_audit
    after = ask(stack, token, question)
    assert after.succeeded, after
    wait_until_no_obo_roles(cluster_of)
