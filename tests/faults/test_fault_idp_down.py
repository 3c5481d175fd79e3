"""The IdP down: every call fails closed, no role is minted, and sign-in recovers."""

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

from trustloop.cli.session import sign_in

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.e2e


def test_idp_down_fails_closed_and_recovers_after_a_new_sign_in(
    stack: Stack, cluster_of: ClusterInfo, token: str
) -> None:
    """With the IdP stopped the records service is unavailable (its token check
    needs the IdP); once it is back, a fresh sign-in reads the chart again."""
    question = chart_question(cluster_of)
    stack.stop_part("idp")
    try:
        down = ask(stack, token, question)
        assert_clear_failure(down, "cannot check your sign-in")
        assert obo_roles(cluster_of) == []
    finally:
        stack.start_part("idp")

    after = ask(stack, sign_in(stack.settings, "achen"), question)

    assert after.succeeded, after
    assert "Chart for" in after.text
    wait_until_no_obo_roles(cluster_of)


def test_a_token_from_before_the_idp_restart_is_told_to_sign_in_again(
    stack: Stack, cluster_of: ClusterInfo, token: str
) -> None:
    """The dev IdP keeps its signing keys in memory: a restart ends every session."""
    stack.stop_part("idp")
    stack.start_part("idp")

    stale = ask(stack, token, chart_question(cluster_of))

    assert_clear_failure(stale, "sign in again")
    assert obo_roles(cluster_of) == []
