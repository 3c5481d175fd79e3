"""The simulated clinicians of bench/load.py: what each asks, and what it must get.

Each clinician runs a fixed cycle of calls (:data:`MIX`): their roster, charts of
their own patients, labs, the chart of a restricted (sensitive) patient of their
own, which needs a step-up the stack approves automatically, the chart of a
patient off their care team, which the IdP must refuse, a clinical note, and a
medication change (physicians; a nurse's is refused by policy). Writes need the
clinician's consent push, approved automatically too.

Two ways to call: ``direct`` (the MCP client calling the MCP server's tools, as
the agent runtime does, one MCP session per clinician) and ``runtime`` (reads as
questions through the agent runtime, writes as direct tool calls: the offline
planner's phrasing for writes is not relied on here).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from trustloop.app.runtime_client import InvocationError, invoke

if TYPE_CHECKING:
    from mcp.types import CallToolResult

    from trustloop.settings import Settings

MIX = (
    "roster",
    "chart",
    "labs",
    "restricted",
    "chart",
    "off_team",
    "note",
    "medication",
)
READ_KINDS = frozenset({"roster", "chart", "labs", "restricted", "off_team"})
CALL_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Patients:
    """What one clinician's calls are about (ids only)."""

    own: list[str]
    restricted: list[str]  # sensitive, on their care team
    off_team: list[str]
    medications: list[tuple[str, str]]  # (patient id, MedicationRequest id)


@dataclass
class Outcome:
    """One call: its kind, whether it did what it must, how long it took."""

    kind: str
    ms: float
    expected: bool
    refused: bool = False  # an expected refusal (off-team, a nurse's medication)
    step_up: bool = False
    obo_jti: str | None = None
    detail: str = ""
    ended: float = field(default_factory=time.perf_counter)  # made as the call ends


@dataclass
class Clinician:
    username: str
    role: str  # physician | nurse
    index: int
    patients: Patients
    token: str = field(default="", repr=False)
    outcomes: list[Outcome] = field(default_factory=list)

    def pick(self, pool: list[str], i: int) -> str:
        return pool[(i + self.index) % len(pool)]


def plan(c: Clinician, i: int) -> tuple[str, str, dict[str, Any]]:
    """The ``i``-th call of ``c``: kind, tool and arguments."""
    kind = MIX[i % len(MIX)]
    p = c.patients
    if kind == "restricted" and not p.restricted:
        kind = "chart"  # no sensitive patient on this care team
    if kind == "roster":
        return kind, "list_my_patients", {}
    if kind == "labs":
        return kind, "get_lab_results", {"patient_id": c.pick(p.own, i), "limit": 5}
    if kind == "note":
        text = f"Load bench note {c.index}-{i}: reviewed, no change."
        return (
            kind,
            "write_clinical_note",
            {"patient_id": c.pick(p.own, i), "text": text},
        )
    if kind == "medication":
        patient_id, request_id = p.medications[(i + c.index) % len(p.medications)]
        args = {
            "patient_id": patient_id,
            "medication_request_id": request_id,
            "dosage": f"bench dose {c.index}-{i}",
        }
        return kind, "update_medication", args
    pool = {"chart": p.own, "restricted": p.restricted, "off_team": p.off_team}[kind]
    return kind, "read_patient_record", {"patient_id": c.pick(pool, i)}


def must_refuse(c: Clinician, kind: str) -> bool:
    return kind == "off_team" or (kind == "medication" and c.role == "nurse")


def judge(c: Clinician, kind: str, ok: bool, text: str) -> tuple[bool, bool]:
    """(expected, refused): success where allowed, ``access_denied`` where not."""
    if must_refuse(c, kind):
        refused = not ok and text.startswith("access_denied")
        return refused, refused
    return ok, False


# -- direct: the MCP client, one session per clinician ------------------------------


async def run_direct(
    settings: Settings, c: Clinician, calls: int, deadline: float
) -> None:
    headers = {"Authorization": f"Bearer {c.token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=CALL_TIMEOUT_S) as http,
        Client(streamable_http_client(settings.mcp_url, http_client=http)) as mcp,
    ):
        for i in range(calls):
            if time.monotonic() > deadline:
                return
            kind, tool, arguments = plan(c, i)
            started = time.perf_counter()
            result = await mcp.call_tool(tool, arguments)
            ms = (time.perf_counter() - started) * 1000
            c.outcomes.append(_from_result(c, kind, ms, result))


def _from_result(c: Clinician, kind: str, ms: float, result: CallToolResult) -> Outcome:
    block = result.content[0] if result.content else None
    text = block.text if isinstance(block, TextContent) else ""
    ok = not result.is_error
    expected, refused = judge(c, kind, ok, text)
    payload = result.structured_content or {}
    jti = payload.get("obo_jti") if ok else None
    return Outcome(
        kind,
        ms,
        expected,
        refused,
        obo_jti=jti if isinstance(jti, str) else None,
        detail="" if expected else text[:160],
    )


# -- runtime: questions through the agent runtime, writes direct --------------------


def _question(tool: str, arguments: dict[str, Any]) -> str:
    if tool == "list_my_patients":
        return "list my patients"
    return f"show me the chart of Patient/{arguments['patient_id']}"


async def run_runtime(
    settings: Settings, c: Clinician, calls: int, deadline: float
) -> None:
    writes: list[int] = []
    for i in range(calls):
        if time.monotonic() > deadline:
            break
        kind, tool, arguments = plan(c, i)
        if kind not in READ_KINDS:
            writes.append(i)
            continue
        if kind == "labs":
            kind, tool = "chart", "read_patient_record"
            arguments = {"patient_id": arguments["patient_id"]}
        question = _question(tool, arguments)
        started = time.perf_counter()
        text, tools = await anyio.to_thread.run_sync(_ask, settings, c.token, question)
        ms = (time.perf_counter() - started) * 1000
        c.outcomes.append(_from_answer(c, kind, ms, text, tools))
        if writes:  # interleave the writes where the cycle has them
            await _direct_calls(settings, c, writes, deadline)
            writes.clear()
    if writes:
        await _direct_calls(settings, c, writes, deadline)


async def _direct_calls(
    settings: Settings, c: Clinician, indexes: list[int], deadline: float
) -> None:
    headers = {"Authorization": f"Bearer {c.token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=CALL_TIMEOUT_S) as http,
        Client(streamable_http_client(settings.mcp_url, http_client=http)) as mcp,
    ):
        for i in indexes:
            if time.monotonic() > deadline:
                return
            kind, tool, arguments = plan(c, i)
            started = time.perf_counter()
            result = await mcp.call_tool(tool, arguments)
            ms = (time.perf_counter() - started) * 1000
            c.outcomes.append(_from_result(c, kind, ms, result))


def _ask(settings: Settings, token: str, question: str) -> tuple[str, list[Any]]:
    """The answer text (or the error frame's) and the tool frames."""
    text, tools = "", []
    try:
        for frame in invoke(
            settings.runtime_url,
            question,
            access_token=token,
            session_id=str(uuid.uuid4()),
        ):
            if frame.get("type") == "text":
                text += str(frame.get("text", ""))
            elif frame.get("type") == "tool":
                tools.append(frame)
    except InvocationError as exc:
        return f"error: {exc}", tools
    return text, tools


def _from_answer(
    c: Clinician, kind: str, ms: float, text: str, tools: list[Any]
) -> Outcome:
    ok = bool(tools) and all(t.get("status") == "success" for t in tools)
    if must_refuse(c, kind):
        refused = bool(tools) and "access_denied" in text
        return Outcome(kind, ms, refused, refused, detail="" if refused else text[:160])
    expected = ok and not text.startswith("error:")
    detail = "" if expected else (text[:120] + " " + json.dumps(tools)[:80])
    return Outcome(kind, ms, expected, detail=detail)
