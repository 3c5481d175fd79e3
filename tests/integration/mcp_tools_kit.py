"""Helpers for the MCP tool tests: the whole stack, an MCP client over HTTP, probes.

The stack is the one ``trustloop up`` runs (every part its own process, real
PostgreSQL with the Synthea samples); the client is the MCP SDK's over
streamable HTTP with the clinician's bearer token, as the agent runtime uses it.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import httpx2
import psycopg
from fhir.resources.R4B import get_fhir_model_class
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from trustloop.cli.approve_cmd import answer_push
from trustloop.devstack.stack import Stack

if TYPE_CHECKING:
    from mcp.types import Tool

APPROVE_ON_DEVICE = "approve on your device"
EXCHANGE_EVENTS = frozenset({"token_exchanged", "exchange_denied"})


async def call_tool(
    stack: Stack,
    token: str,
    name: str,
    arguments: dict[str, Any] | None = None,
    heard: list[str] | None = None,
) -> CallToolResult:
    """One tool call over HTTP; ``heard`` collects progress messages."""

    async def report(progress: float, total: float | None, message: str | None) -> None:
        if heard is not None and message:
            heard.append(message)

    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=120) as http,
        Client(streamable_http_client(stack.settings.mcp_url, http_client=http)) as c,
    ):
        return await c.call_tool(name, arguments or {}, progress_callback=report)


async def list_tools(stack: Stack, token: str) -> list[Tool]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(stack.settings.mcp_url, http_client=http)) as c,
    ):
        return (await c.list_tools()).tools


def text_of(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def payload_of(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a successful call (its text is the same JSON)."""
    assert not result.is_error, text_of(result)
    payload: dict[str, Any] | None = result.structured_content
    assert payload is not None
    assert json.loads(text_of(result)) == payload
    return payload


def assert_r4b(resource: dict[str, Any]) -> None:
    """``resource`` validates against the fhir.resources R4B model of its type."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def admin_query(stack: Stack, sql: str, *params: object) -> list[tuple[Any, ...]]:
    assert stack.cluster is not None
    with psycopg.connect(stack.cluster.admin_conninfo()) as conn:
        return list(conn.execute(sql, params).fetchall())


def audit(stack: Stack, part: str) -> list[dict[str, Any]]:
    path = stack.settings.audit_dir / f"{part}.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def audit_text(stack: Stack, part: str) -> str:
    path = stack.settings.audit_dir / f"{part}.jsonl"
    return path.read_text() if path.exists() else ""


def roster_of(stack: Stack, sub: str) -> list[tuple[str, str, bool]]:
    """``(id, name, sensitive)`` of a clinician's care team, from the database."""
    rows = admin_query(
        stack,
        "select p.id, p.name, p.sensitive from clinical.patients p "
        "join clinical.care_team_members m on m.patient_id = p.id "
        "where m.clinician_sub = %s order by p.name, p.id",
        sub,
    )
    return [(str(pid), str(name), bool(sensitive)) for pid, name, sensitive in rows]


async def answer_when_pending(
    stack: Stack, username: str, *, approve: bool, timeout_s: float = 30.0
) -> dict[str, Any]:
    """Answer ``username``'s next push on the IdP's authenticator API once it pends."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = await anyio.to_thread.run_sync(
            lambda: answer_push(stack.settings, username, approve=approve)
        )
        if answer is not None:
            return answer
        await anyio.sleep(0.1)
    raise TimeoutError(f"no push for {username} within {timeout_s} s")


async def call_answering(
    stack: Stack,
    token: str,
    name: str,
    arguments: dict[str, Any],
    *,
    username: str,
    approve: bool,
    heard: list[str] | None = None,
) -> tuple[CallToolResult, dict[str, Any]]:
    """A tool call whose consent or step-up push is answered on the device API."""
    answers: list[dict[str, Any]] = []
    result: list[CallToolResult] = []

    async def answer() -> None:
        answers.append(await answer_when_pending(stack, username, approve=approve))

    async def call() -> None:
        result.append(await call_tool(stack, token, name, arguments, heard))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(answer)
        tasks.start_soon(call)
    return result[0], answers[0]
