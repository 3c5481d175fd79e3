"""A denial is final for the request: the same refused call never runs twice.

DESIGN.md: "A denial is final for that request: the tool returns a clear error
result, the agent relays it and does not retry." The offline planner obeys that;
a hosted model, or one steered by a prompt injection, may not. This Strands hook
enforces it in the runtime, per invocation: once a tool call is refused
(``access_denied``: a policy refusal, a declined step-up or consent), any call of
the same action on the same patient is cancelled before it reaches the MCP server
(a read refused for a patient also stops their lab results; a declined note is not
asked for again with other words), and the tool calls of one invocation are
bounded, so no model can loop the rhythm.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from strands.hooks import AfterToolCallEvent, BeforeToolCallEvent, HookProvider

if TYPE_CHECKING:
    from strands.hooks import HookRegistry

MAX_TOOL_CALLS = 12
_DENIED_PREFIX = "access_denied"


class DenialGuard(HookProvider):
    """Cancels repeats of refused calls and calls past the per-invocation bound."""

    def __init__(self, max_tool_calls: int = MAX_TOOL_CALLS) -> None:
        self._max_tool_calls = max_tool_calls
        self._calls = 0
        self._denied: set[str] = set()

    def register_hooks(self, registry: HookRegistry, **kwargs: Any) -> None:
        registry.add_callback(BeforeToolCallEvent, self._before)
        registry.add_callback(AfterToolCallEvent, self._after)

    def _before(self, event: BeforeToolCallEvent) -> None:
        if _key(event.tool_use) in self._denied:
            event.cancel_tool = (
                f"{_DENIED_PREFIX}: this action on this patient was already refused "
                "in this request; a denial is final"
            )
            return
        self._calls += 1
        if self._calls > self._max_tool_calls:
            event.cancel_tool = (
                f"too many tool calls in one request (limit {self._max_tool_calls})"
            )

    def _after(self, event: AfterToolCallEvent) -> None:
        result = event.result
        if result.get("status") != "error":
            return
        texts = [str(part.get("text", "")) for part in result.get("content", [])]
        if any(text.startswith(_DENIED_PREFIX) for text in texts):
            self._denied.add(_key(event.tool_use))


# The RFC 9396 action each patient tool asks the IdP for (docs/contracts.md).
_ACTIONS = {
    "read_patient_record": "read",
    "get_lab_results": "read",
    "write_clinical_note": "write_note",
    "update_medication": "update_medication",
}


def _key(tool_use: Any) -> str:
    """The action and patient of a call; else its name and arguments, canonically."""
    name = str(tool_use.get("name"))
    arguments = tool_use.get("input")
    arguments = arguments if isinstance(arguments, dict) else {}
    patient = arguments.get("patient_id")
    if name in _ACTIONS and isinstance(patient, str):
        return f"{_ACTIONS[name]}:Patient/{patient}"
    return f"{name}:{json.dumps(arguments, sort_keys=True, default=str)}"
