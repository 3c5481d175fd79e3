"""Reading MCP tool results as Strands hands them to the model and to the runtime.

Strands 1.62 turns an MCP ``CallToolResult`` into a ``toolResult`` block:
``{"toolUseId", "status": "success"|"error", "content": [{"text": ...}],
"structuredContent": {...}, "isError": bool, "metadata": {...}}``. The trustloop MCP
server puts the same JSON object in the text content and in the structured content
(docs/contracts.md); a refusal is ``status: "error"`` with text that starts with the
OAuth error code (``access_denied: ...``). A plain Strands ``@tool`` function returning
a JSON string yields only the text content, so both places are read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The MCP SDK prefixes errors raised inside a tool (ToolError) with this phrase.
_SDK_ERROR_PREFIX = re.compile(r"^Error executing tool [\w.-]+:\s*")


@dataclass(frozen=True)
class ToolOutcome:
    """One tool result: whether it succeeded, its JSON object, and its text."""

    name: str
    ok: bool
    data: dict[str, Any] | None
    text: str

    @property
    def obo_jti(self) -> str | None:
        """The ``jti`` of the OBO token the MCP server used for this call, if any."""
        jti = (self.data or {}).get("obo_jti")
        return jti if isinstance(jti, str) else None


def read_tool_result(name: str, block: Mapping[str, Any]) -> ToolOutcome:
    """Parse one ``toolResult`` block; never raises on a malformed result."""
    ok = block.get("status") != "error" and block.get("isError") is not True
    text = _joined_text(block.get("content"))
    data = _json_object(block.get("structuredContent"), block.get("content"), text)
    if not ok:
        text = _SDK_ERROR_PREFIX.sub("", text.strip())
    return ToolOutcome(name=name, ok=ok, data=data, text=text)


def _joined_text(content: object) -> str:
    if not isinstance(content, list):
        return ""
    parts = [item["text"] for item in content if _has_str(item, "text")]
    return "\n".join(parts)


def _json_object(
    structured: object, content: object, text: str
) -> dict[str, Any] | None:
    if isinstance(structured, dict):
        return structured

    if isinstance(content, list):
        for item in content:
            if isinstance(item, dict) and isinstance(item.get("json"), dict):
                found: dict[str, Any] = item["json"]
                return found

    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _has_str(item: object, key: str) -> bool:
    return isinstance(item, dict) and isinstance(item.get(key), str)
