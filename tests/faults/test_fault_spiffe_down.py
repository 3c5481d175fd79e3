"""The SPIFFE Workload API gone: no actor token, no exchange, no role; then back."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from faultkit import (
    ask,
    ask_until_answered,
    assert_clear_failure,
    chart_question,
    obo_roles,
    wait_until_no_obo_roles,
)

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.e2e


def test_socket_removed_fails_closed_and_recovers_when_it_is_back(
    stack: Stack, cluster_of: ClusterInfo, token: str
) -> None:
    """The MCP server's socket file gone before it first connects: no SVID, so the
    token check fails and the records service is unavailable; with the socket back
    the next question succeeds. (The MCP server is restarted first, so it has no
    gRPC channel yet: an open one survives the unlink, as on any unix socket.)"""
    question = chart_question(cluster_of)
    stack.stop_part("mcp")
    stack.start_part("mcp")
    sock = stack.settings.spiffe_socket_dir / "mcp-server.sock"
    saved = sock.with_suffix(".moved")
    sock.rename(saved)
    try:
        down = ask(stack, token, question)
        assert_clear_failure(
            down, "workload identity", "records service is unavailable"
        )
        assert obo_roles(cluster_of) == []
    finally:
        saved.rename(sock)

    after = ask(stack, token, question)

    assert after.succeeded, after
    wait_until_no_obo_roles(cluster_of)


def test_workload_api_stopped_fails_closed_and_recovers_on_restart(
    stack: Stack, cluster_of: ClusterInfo, token: str
) -> None:
    """The SPIFFE stand-in stopped (sockets and bundle gone), then started again
    with a new signing key. It keeps publishing the old public key until the SVIDs
    it signed expire, so the MCP server's cached SVID still verifies; the new key
    reaches the IdP at its next JWKS refetch (at most every 5 s)."""
    question = chart_question(cluster_of)
    assert ask(stack, token, question).succeeded
    stack.stop_part("spire")
    try:
        # The MCP server keeps one fresh actor SVID fetched ahead, minted before
        # the stop: the next tool call may still use it; the one after cannot.
        ask(stack, token, question)
        down = ask(stack, token, question)
        assert_clear_failure(
            down, "workload identity", "records service is unavailable"
        )
        assert obo_roles(cluster_of) == []
    finally:
        stack.start_part("spire")

    after = ask_until_answered(stack, token, question)

    assert after.succeeded, after
    wait_until_no_obo_roles(cluster_of)
