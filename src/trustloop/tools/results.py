"""A tool body's payload as an MCP result, or its refusal as a tool error.

docs/contracts.md, "MCP server": a result is one JSON object, as structured
content and as text; a refusal is ``isError: true`` whose text starts with the
OAuth error code (``access_denied: ...``), and carries no structured content.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.types import CallToolResult, TextContent
from pydantic_core import to_json, to_jsonable_python

from trustloop.identity.rhythm import ToolCallError

Payload = dict[str, Any]
# The output schema clients see is a JSON object; the body builds the result.
ToolResult = Annotated[CallToolResult, Payload]


async def respond(body: Callable[[], Awaitable[Payload]]) -> CallToolResult:
    """Run ``body``: its payload as the result, a :class:`ToolCallError` as text."""
    try:
        payload = to_jsonable_python(await body())
    except ToolCallError as exc:
        return refusal(exc)
    # pydantic-core's encoder: compact UTF-8 JSON, about 3x cheaper than json.dumps.
    text = to_json(payload).decode("utf-8")
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=payload
    )


def refusal(error: ToolCallError) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=str(error))], is_error=True
    )
