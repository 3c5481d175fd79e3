"""tools/list from a result built once: the SDK's own bytes, behind the bearer check.

The HTTP tests drive the real ASGI app (bearer check, DNS-rebinding check, mcp's
stateless-era handler) in process. They guard the private-looking part of the
design too: if an mcp release changed what ``tools/list`` answers or how server
middleware sees a request, the memo and the SDK's answer would differ here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast
from unittest.mock import patch

import pytest
from mcp.server.auth.provider import AccessToken
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    INVALID_PARAMS,
    PROTOCOL_VERSION_META_KEY,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.testclient import TestClient

from trustloop.settings import Settings
from trustloop.tools import inputs
from trustloop.tools import server as server_module
from trustloop.tools.catalog import SPECS
from trustloop.tools.listing import StaticToolListing
from trustloop.tools.server import build_app, build_server

if TYPE_CHECKING:
    from mcp.server.context import HandlerResult, ServerRequestContext
    from mcp.server.mcpserver import MCPServer
    from mcp.types import Tool
    from starlette.applications import Starlette

    from trustloop.identity.rhythm import Rhythm

GOOD = "good-token"
SETTINGS = Settings()
ORIGIN = "http://127.0.0.1:8000"


class OneTokenVerifier:
    """Accepts :data:`GOOD` only, as the IdP would accept one live token."""

    async def verify_token(self, token: str) -> AccessToken | None:
        if token != GOOD:
            return None
        return AccessToken(token=token, client_id="cli", scopes=[])


def make_app(*, memo: bool) -> tuple[Starlette, MCPServer]:
    """The ASGI app :func:`build_app` makes, and the MCPServer inside it."""
    built: list[MCPServer] = []

    def capturing(*args: Any, **kwargs: Any) -> MCPServer:
        server = build_server(*args, **kwargs)
        built.append(server)
        return server

    rhythm = cast("Rhythm", object())  # tools/list never reaches the rhythm
    with patch.object(server_module, "build_server", capturing):
        app = build_app(SETTINGS, rhythm=rhythm, verifier=OneTokenVerifier())
    (server,) = built
    if not memo:
        kept = [m for m in server.middleware if not isinstance(m, StaticToolListing)]
        assert len(kept) == len(server.middleware) - 1
        server.middleware[:] = kept
    return app, server


def list_request(version: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = {PROTOCOL_VERSION_META_KEY: version, CLIENT_CAPABILITIES_META_KEY: {}}
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/list",
        "params": {"_meta": meta, **(params or {})},
    }


def post(
    client: TestClient,
    body: dict[str, Any],
    version: str,
    token: str | None = GOOD,
) -> tuple[int, bytes]:
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": version,
        "Mcp-Method": str(body["method"]),
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = client.post("/mcp", json=body, headers=headers)
    return response.status_code, response.content


def wire_result(content: bytes) -> dict[str, Any]:
    """The JSON-RPC result, whether mcp answered as JSON or as one SSE event."""
    text = content.decode()
    if not text.lstrip().startswith("{"):
        data = [line[5:] for line in text.splitlines() if line.startswith("data:")]
        text = data[-1]
    message: dict[str, Any] = json.loads(text)
    return message


@pytest.fixture
def memo_client() -> Iterator[TestClient]:
    with TestClient(make_app(memo=True)[0], base_url=ORIGIN) as client:
        yield client


@pytest.fixture
def sdk_client() -> Iterator[TestClient]:
    with TestClient(make_app(memo=False)[0], base_url=ORIGIN) as client:
        yield client


@pytest.mark.parametrize("version", MODERN_PROTOCOL_VERSIONS)
def test_listing_is_the_sdks_own_answer_byte_for_byte(
    memo_client: TestClient, sdk_client: TestClient, version: str
) -> None:
    """The first, the memoized and an unmemoized server's answers are identical."""
    answers = [post(memo_client, list_request(version), version) for _ in range(3)]
    reference = post(sdk_client, list_request(version), version)

    assert reference[0] == 200
    assert answers == [reference] * 3


def test_listing_advertises_the_catalog(memo_client: TestClient) -> None:
    version = MODERN_PROTOCOL_VERSIONS[-1]
    post(memo_client, list_request(version), version)

    _, content = post(memo_client, list_request(version), version)
    tools = wire_result(content)["result"]["tools"]

    assert [tool["name"] for tool in tools] == [spec.name for spec in SPECS]
    for tool, spec in zip(tools, SPECS, strict=True):
        assert tool["description"] == spec.description
        assert tool["inputSchema"] == inputs.input_schema(spec.arguments)
        annotations = spec.annotations.model_dump(by_alias=True, exclude_none=True)
        assert tool["annotations"] == annotations


def test_tools_are_built_once_for_many_listings() -> None:
    """Only the first listing per protocol version reaches mcp's handler."""
    app, server = make_app(memo=True)
    built: list[int] = []
    list_tools = server.list_tools

    async def counting() -> list[Tool]:
        built.append(1)
        return await list_tools()

    server.list_tools = counting  # type: ignore[method-assign]
    version = MODERN_PROTOCOL_VERSIONS[-1]

    with TestClient(app, base_url=ORIGIN) as client:
        statuses = [post(client, list_request(version), version)[0] for _ in range(5)]

    assert statuses == [200] * 5
    assert built == [1]


def test_listing_without_a_valid_bearer_token_is_401_even_when_memoized(
    memo_client: TestClient,
) -> None:
    version = MODERN_PROTOCOL_VERSIONS[-1]
    assert post(memo_client, list_request(version), version)[0] == 200

    none = post(memo_client, list_request(version), version, token=None)
    wrong = post(memo_client, list_request(version), version, token="other")

    assert none[0] == 401
    assert wrong[0] == 401
    assert b"list_my_patients" not in none[1] + wrong[1]


def test_malformed_params_are_refused_as_mcp_refuses_them(
    memo_client: TestClient, sdk_client: TestClient
) -> None:
    version = MODERN_PROTOCOL_VERSIONS[-1]
    post(memo_client, list_request(version), version)
    bad = list_request(version, {"cursor": 7})

    memo = post(memo_client, bad, version)
    reference = post(sdk_client, bad, version)

    assert memo == reference
    assert wire_result(memo[1])["error"]["code"] == INVALID_PARAMS


class FakeContext:
    def __init__(self, method: str, version: str) -> None:
        self.method = method
        self.protocol_version = version
        self.params: dict[str, Any] = {}


async def test_other_methods_and_handshake_versions_always_reach_mcp() -> None:
    listing = StaticToolListing()
    reached: list[str] = []

    async def call_next(ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        reached.append(ctx.method)
        return {"tools": []}

    for method, version in [
        ("tools/list", "2025-06-18"),
        ("tools/list", "2025-06-18"),
        ("tools/call", MODERN_PROTOCOL_VERSIONS[-1]),
        ("tools/call", MODERN_PROTOCOL_VERSIONS[-1]),
    ]:
        ctx = cast("ServerRequestContext[Any, Any]", FakeContext(method, version))
        await listing(ctx, call_next)

    assert reached == ["tools/list", "tools/list", "tools/call", "tools/call"]


async def test_a_result_that_is_not_a_wire_dict_is_not_kept() -> None:
    listing = StaticToolListing()
    version = MODERN_PROTOCOL_VERSIONS[-1]
    reached: list[int] = []

    async def call_next(ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        reached.append(1)
        return None

    ctx = cast("ServerRequestContext[Any, Any]", FakeContext("tools/list", version))
    await listing(ctx, call_next)
    await listing(ctx, call_next)

    assert reached == [1, 1]


async def test_each_answer_is_a_fresh_copy() -> None:
    """A caller that changes its answer cannot change the next caller's."""
    listing = StaticToolListing()
    version = MODERN_PROTOCOL_VERSIONS[-1]
    params = list_request(version)["params"]

    async def call_next(ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        return {"tools": [{"name": "a", "inputSchema": {"type": "object"}}]}

    ctx = cast("ServerRequestContext[Any, Any]", FakeContext("tools/list", version))
    ctx.params = params
    await listing(ctx, call_next)
    first = cast("dict[str, Any]", await listing(ctx, call_next))
    first["tools"][0]["inputSchema"]["type"] = "string"
    second = cast("dict[str, Any]", await listing(ctx, call_next))

    assert second == {"tools": [{"name": "a", "inputSchema": {"type": "object"}}]}
