"""Each conversation's record of tool calls, for the page's activity panel.

One :class:`ToolCall` per ``tool`` frame of the runtime: the tool's name, the
patient it concerned (when the runtime names one), the decision and the OBO
token's ``jti``. Identifiers only: never a token, a credential or chart content.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

Decision = Literal["allowed", "refused", "failed"]
MAX_CALLS = 200

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_PATIENT = re.compile(r"(Patient/)?[A-Za-z0-9\-.]{1,64}")
_JTI = re.compile(r"[A-Za-z0-9\-_.]{1,128}")
# Tool error codes (docs/contracts.md, "MCP server") that are a decision, not a fault.
_REFUSALS = ("access_denied", "invalid_token")


@dataclass(frozen=True)
class ToolCall:
    """One tool call as the panel shows it."""

    tool: str
    patient: str | None
    decision: Decision
    obo_jti: str | None
    at: float

    def wire(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "patient": self.patient,
            "decision": self.decision,
            "obo_jti": self.obo_jti,
            "at": round(self.at, 3),
        }


@dataclass
class Conversation:
    """A conversation: its id is the runtime session id of every question in it."""

    id: str
    calls: list[ToolCall] = field(default_factory=list)

    @classmethod
    def new(cls) -> Conversation:
        # AgentCore wants session ids of at least 33 characters; a UUID has 36.
        return cls(str(uuid.uuid4()))

    def record(self, frame: dict[str, Any], *, now: float | None = None) -> ToolCall:
        """Add the call a runtime ``tool`` frame describes; returns it."""
        call = tool_call(frame, now=time.time() if now is None else now)
        self.calls.append(call)
        del self.calls[:-MAX_CALLS]
        return call


def tool_call(frame: dict[str, Any], *, now: float) -> ToolCall:
    """Read a runtime ``tool`` frame, keeping only well-formed identifiers."""
    return ToolCall(
        tool=_match(_NAME, frame.get("name")) or "unknown",
        patient=_patient(frame),
        decision=_decision(frame),
        obo_jti=_match(_JTI, frame.get("obo_jti")),
        at=now,
    )


def _decision(frame: dict[str, Any]) -> Decision:
    if frame.get("status") == "success":
        return "allowed"
    code = frame.get("error_code")
    if isinstance(code, str) and code.startswith(_REFUSALS):
        return "refused"
    # Without an error code a failed call is a refusal as far as the page can
    # tell: the IdP's "no" is the common case and the answer text says which.
    return "refused" if code is None else "failed"


def _patient(frame: dict[str, Any]) -> str | None:
    patient = _match(_PATIENT, frame.get("patient_id"))
    if patient is None:
        return None
    return patient if patient.startswith("Patient/") else f"Patient/{patient}"


def _match(pattern: re.Pattern[str], value: object) -> str | None:
    if isinstance(value, str) and pattern.fullmatch(value):
        return value
    return None
