"""The Vault stand-in down: the lease step fails closed and the next call recovers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from faultkit import (
    ask,
    assert_clear_failure,
    chart_question,
    obo_roles,
    wait_until_no_obo_roles,
)

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.e2e


def test_vault_down_fails_closed_and_recovers(
    stack: Stack, cluster_of: ClusterInfo, token: str
) -> None:
    question = chart_question(cluster_of)
    assert ask(stack, token, question).succeeded
    stack.stop_part("vault")
    try:
        down = ask(stack, token, question)
        assert_clear_failure(down, "temporarily_unavailable: credential service")
        assert obo_roles(cluster_of) == []
    finally:
        stack.start_part("vault")

    after = ask(stack, token, question)

    assert after.succeeded, after
    wait_until_no_obo_roles(cluster_of)
