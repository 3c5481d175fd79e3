"""Introspection on every tool call, once: counted at the real IdP of the real stack.

The MCP server's bearer check introspects each request; the tool call of that
request reuses the answer as its rhythm's step 1. So a tool call in an open MCP
session costs the IdP exactly one ``token_introspected`` line, and a second call
introspects again: nothing is cached across requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_tools_kit import audit, payload_of, roster_of
from stackkit import running_stack

from trustloop.cli.session import sign_in

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.integration

CLINICIAN = ("achen", "clin-achen")


@pytest.fixture(scope="module")
def stack(pg_state_dir_factory: Callable[[str], Path]) -> Iterator[Stack]:
    with running_stack(pg_state_dir_factory("mcp-introspection-count")) as running:
        yield running


@pytest.fixture(scope="module")
def token(stack: Stack) -> str:
    return sign_in(stack.settings, CLINICIAN[0])


def _introspections(stack: Stack) -> list[dict[str, object]]:
    return [e for e in audit(stack, "idp") if e["event"] == "token_introspected"]


async def test_each_tool_call_is_introspected_exactly_once_at_the_idp(
    stack: Stack, token: str
) -> None:
    patient_id = next(
        pid for pid, _, sensitive in roster_of(stack, CLINICIAN[1]) if not sensitive
    )
    headers = {"Authorization": f"Bearer {token}"}

    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(stack.settings.mcp_url, http_client=http)) as c,
    ):
        await c.list_tools()  # the session's own requests are introspected too
        counts = []
        for _ in range(3):
            before = len(_introspections(stack))
            result = await c.call_tool(
                "read_patient_record", {"patient_id": patient_id}
            )
            payload_of(result)
            counts.append(len(_introspections(stack)) - before)

    assert counts == [1, 1, 1]
    calls = [e for e in audit(stack, "mcp") if e["event"] == "tool_call"][-3:]
    assert all(call["outcome"] == "ok" for call in calls)
    assert all(call["timings_ms"]["introspect"] > 0 for call in calls)
    user_jtis = {e["jti"] for e in _introspections(stack)[-3:]}
    assert len(user_jtis) == 1  # the clinician's token, each time
    assert None not in user_jtis
