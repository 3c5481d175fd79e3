"""``tools/list`` answered from a result built once per protocol version.

mcp's stateless-era HTTP handler lists the tools through the server before every
``tools/call`` that has arguments, to check ``Mcp-Param-*`` headers against the
called tool's schema; building the six ``Tool`` models, dumping them and
validating the dump against the protocol surface was most of that cost. The
tool set is static (:data:`trustloop.tools.catalog.SPECS`, the same for every
caller), so :class:`StaticToolListing` keeps the SDK's own wire answer for each
protocol version the first time it is produced and serves a copy of it after
that: the listing is the SDK's output byte for byte, only not rebuilt.

It is a server middleware (``MCPServer.middleware``, mcp 2.1.1's public, if
provisional, hook), so it runs behind the bearer-token check like every other
request; the request's params are still validated against the protocol surface
exactly as mcp does before its handler runs. Only the stateless 2026-era
versions are served from the memo: their connections are born initialized,
so mcp's pre-initialization gate has nothing to refuse. Older versions pass
through untouched. ``tests/unit/test_tool_listing.py`` compares the memo with
the SDK's answer, so an SDK change that alters either fails there.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mcp_types.methods import validate_client_request
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

if TYPE_CHECKING:
    from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

LIST_TOOLS = "tools/list"


class StaticToolListing:
    """Server middleware: the ``tools/list`` wire result, kept per protocol version.

    Safe to share between concurrent requests: the memo only grows, and every
    answer is a fresh copy the pipeline may change without touching the memo.
    """

    def __init__(self) -> None:
        self._served: dict[str, str] = {}

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        version = ctx.protocol_version
        if ctx.method != LIST_TOOLS or version not in MODERN_PROTOCOL_VERSIONS:
            return await call_next(ctx)

        served = self._served.get(version)
        if served is None:
            return self._kept(version, await call_next(ctx))

        # The check mcp runs before any handler: malformed params stay
        # INVALID_PARAMS (the ValidationError propagates as it would from mcp).
        validate_client_request(LIST_TOOLS, version, ctx.params)
        fresh: dict[str, Any] = json.loads(served)
        return fresh

    def _kept(self, version: str, result: HandlerResult) -> HandlerResult:
        # Only the finished wire form (a dict) is kept; anything else is
        # served as it came and the next request builds it again.
        if isinstance(result, dict):
            self._served[version] = json.dumps(result)
        return result
