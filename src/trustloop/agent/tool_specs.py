"""The MCP server's tool list, asked for once per process and server (for 5 min).

``tools/list`` answers every clinician the same six tools (docs/contracts.md,
"Tools (MCP server) of this release"): their names, descriptions and JSON
Schemas, no clinician data and no per-clinician filtering. Asking again for
every question cost a third request per question (introspected at the IdP like
the others) and its JSON and pydantic work in the runtime and the MCP server.

What stays per invocation: its own MCP session (``initialize`` over its own
HTTP client, carrying that clinician's token, so a refused token still fails
before the model sees any history) and every tool call over that session. Only
the MCP ``Tool`` descriptions are shared; each invocation wraps them for its
own client and gives them to its own session (whose output-schema checks of
tool results need them). After :data:`TOOLS_TTL_S` the next invocation lists them again, so
a redeployed MCP server's tools are seen within minutes without a restart.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, cast

from mcp import ListToolsResult
from strands.tools.mcp import MCPAgentTool
from strands.types import PaginatedList
from strands.types.exceptions import MCPClientInitializationError

from trustloop.agent.mcp_client import ClosingMCPClient

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp.types import Tool
    from strands.tools.mcp import ToolFilters

TOOLS_TTL_S = 300.0

_Page = tuple[tuple["Tool", ...], str | None]
_pages: dict[tuple[str, str | None], tuple[float, _Page]] = {}
_lock = threading.Lock()


class CachedToolsMCPClient(ClosingMCPClient):
    """An ``MCPClient`` whose ``tools/list`` answer is shared per server URL."""

    def __init__(self, *args: Any, server_url: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server_url = server_url

    def list_tools_sync(
        self,
        pagination_token: str | None = None,
        prefix: str | None = None,
        tool_filters: ToolFilters | None = None,
    ) -> PaginatedList[MCPAgentTool]:
        if prefix or tool_filters or self._is_tasks_enabled():
            return super().list_tools_sync(pagination_token, prefix, tool_filters)
        # As the parent: no tools without this invocation's own live session.
        if not self._is_session_active():
            raise MCPClientInitializationError("the MCP client session is not running")

        key = (self._server_url, pagination_token)
        with _lock:
            found = _pages.get(key)
        if found is None or time.monotonic() - found[0] >= TOOLS_TTL_S:
            listed = super().list_tools_sync(pagination_token, prefix, tool_filters)
            page: _Page = (tuple(t.mcp_tool for t in listed), listed.pagination_token)
            with _lock:
                _pages[key] = (time.monotonic(), page)
            return listed

        tools, token = found[1]
        complete = pagination_token is None and token is None
        self._invoke_on_background_thread(self._absorb(tools, complete)).result()
        return PaginatedList([MCPAgentTool(tool, self) for tool in tools], token=token)

    async def _absorb(self, tools: tuple[Tool, ...], complete: bool) -> None:
        """Give this session the listing as if it had asked: mcp's client checks
        each tool result against the listed output schema, and would otherwise
        ask for the list again before the first call."""
        session = cast("ClientSession", self._background_thread_session)
        listing = ListToolsResult(tools=list(tools))
        session._absorb_tool_listing(listing, complete=complete)


def forget_tools() -> None:
    """Drop every cached tool list (tests)."""
    with _lock:
        _pages.clear()
