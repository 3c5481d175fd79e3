"""One clinician request: a fresh Strands agent, its stream as SSE frames, one audit line.

Every invocation builds its own model, its own ``MCPClient`` (whose streamable-HTTP
transport carries ``Authorization: Bearer <clinician token>``, see
:mod:`trustloop.agent.mcp_transport`) and its own ``Agent``,
and stops the MCP client before it ends, whatever happened. The token goes into that
transport header and nowhere else: not the system prompt, the messages, tool
arguments, logs, frames or the audit record.

Frames (docs/contracts.md): ``{"type": "text", "text"}`` for answer text,
``{"type": "tool", "name", "status", "obo_jti"}`` after each tool result,
``{"type": "done"}`` at the end, or a final ``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import structlog

from trustloop.agent.mcp_transport import ClinicianBearerAuth, streamable_http
from trustloop.agent.results import read_tool_result
from trustloop.audit.chain import AuditLog, AuditWriteError

if TYPE_CHECKING:
    from strands import Agent
    from strands.models.model import Model
    from strands.tools.mcp import MCPClient
    from strands.types.content import Message

    from trustloop.agent.sessions import ConversationMemory
    from trustloop.settings import Settings

Frame = dict[str, Any]
Outcome = Literal["answered", "refused", "error", "cancelled", "rejected"]

SYSTEM_PROMPT = """\
You are trustloop, a clinical assistant for the signed-in clinician.
Answer only from the results of your tools; never guess clinical data.
Use find_patient (or list_my_patients) to find a patient by name, then
read_patient_record, get_lab_results, write_clinical_note or update_medication with
the patient's id. "her", "his" or "their" mean the last patient of this conversation.
Writes wait for the clinician's approval on their device: say so before you call.
Tool calls are authorized per call for this clinician; if a tool returns an error (for
example access_denied, or a declined approval), tell the clinician plainly what it
said and do not retry or work around it. After a write, say what was written (note
id, or the medication's new status or dosage).
"""

MCP_STARTUP_TIMEOUT_S = 10


@dataclass
class Tally:
    """What an invocation did: counts and ids only, never content."""

    model_calls: int = 0
    tool_calls: list[dict[str, str | None]] = field(default_factory=list)
    _tool_names: dict[str, str] = field(default_factory=dict)
    _tool_patients: dict[str, str | None] = field(default_factory=dict)

    @property
    def obo_jtis(self) -> list[str]:
        return [c["obo_jti"] for c in self.tool_calls if c["obo_jti"] is not None]

    @property
    def outcome(self) -> Outcome:
        refused = any(c["status"] == "error" for c in self.tool_calls)
        return "refused" if refused else "answered"

    def frames(self, event: Mapping[str, Any]) -> Iterator[Frame]:
        """Frames for one ``Agent.stream_async`` event, counting as it goes."""
        text = event.get("data")
        if isinstance(text, str) and text:
            yield {"type": "text", "text": text}
        message = event.get("message")
        if isinstance(message, dict):
            yield from self._on_message(message)

    def _on_message(self, message: dict[str, Any]) -> Iterator[Frame]:
        blocks = [b for b in message.get("content", []) if isinstance(b, dict)]
        if message.get("role") == "assistant":
            self.model_calls += 1
            for block in blocks:
                use = block.get("toolUse")
                if isinstance(use, dict):
                    use_id = str(use.get("toolUseId"))
                    self._tool_names[use_id] = str(use.get("name"))
                    self._tool_patients[use_id] = _patient_id(use.get("input"))
            return

        for block in blocks:
            result = block.get("toolResult")
            if not isinstance(result, dict):
                continue
            name = self._tool_names.get(str(result.get("toolUseId")), "unknown")
            outcome = read_tool_result(name, result)
            call = {
                "name": name,
                "status": "success" if outcome.ok else "error",
                "obo_jti": outcome.obo_jti,
            }
            self.tool_calls.append(call)
            # For the app's activity panel: ids and an error code, never content.
            use_id = str(result.get("toolUseId"))
            yield {
                "type": "tool",
                **call,
                "patient_id": self._tool_patients.get(use_id),
                "error_code": None if outcome.ok else _error_code(outcome.text),
            }


_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_ERROR_CODE = re.compile(r"([a-z_]{3,40}):")


def _patient_id(tool_input: object) -> str | None:
    """The call's ``patient_id`` argument, when it is a well-formed FHIR id."""
    if not isinstance(tool_input, dict):
        return None
    value = tool_input.get("patient_id")
    return value if isinstance(value, str) and _FHIR_ID.fullmatch(value) else None


def _error_code(text: str) -> str:
    """The OAuth error code a refusal starts with (docs/contracts.md), else a
    generic ``server_error``."""
    found = _ERROR_CODE.match(text)
    return found.group(1) if found else "server_error"


@dataclass(frozen=True)
class UserToken:
    """The clinician's access token and how it arrived; never printed."""

    value: str = field(repr=False)
    mode: Literal["jwt", "sigv4"]


class Invocation:
    """Runs one request and writes its audit line exactly once."""

    def __init__(
        self,
        settings: Settings,
        audit: AuditLog,
        *,
        session_id: str | None,
        request_id: str | None,
        memory: ConversationMemory | None = None,
    ) -> None:
        self.settings = settings
        self.audit = audit
        self.session_id = session_id
        self.request_id = request_id
        self.memory = memory
        self.tally = Tally()
        self.log = structlog.get_logger("trustloop.agent").bind(
            session_id=session_id, request_id=request_id
        )
        self._started = time.perf_counter()
        self._started_cpu = time.process_time()
        self._recorded = False
        self._auth: ClinicianBearerAuth | None = None

    def reject(self, reason: str) -> None:
        """Record a request refused before any agent ran (bad payload, no token)."""
        self.log.info("invocation_rejected", reason=reason)
        self._record("rejected", token_mode=None, reason=reason)

    async def frames(self, prompt: str, token: UserToken) -> AsyncIterator[Frame]:
        """Run the agent; the last frame is ``done`` or an ``error``."""
        error: str | None = None
        try:
            try:
                # aclosing: a client that goes away still stops the MCP client now.
                async with contextlib.aclosing(
                    self._agent_frames(prompt, token)
                ) as run:
                    async for frame in run:
                        yield frame
            # The one choke point: any failure becomes a final frame, never a trace.
            except Exception as exc:  # noqa: BLE001
                self.log.warning("invocation_failed", error_type=type(exc).__name__)
                rejected = self._auth is not None and self._auth.rejected
                unverifiable = self._auth is not None and self._auth.unverifiable
                error = describe_failure(
                    exc, sign_in_rejected=rejected, sign_in_unverifiable=unverifiable
                )

            outcome: Outcome = "error" if error else self.tally.outcome
            if not self._record(outcome, token_mode=token.mode):
                error = error or "the runtime could not write its audit record"
            yield {"error": error} if error else {"type": "done"}
        finally:
            if not self._recorded:  # the client went away mid-stream
                self._record("cancelled", token_mode=token.mode)

    async def _agent_frames(
        self, prompt: str, token: UserToken
    ) -> AsyncGenerator[Frame, None]:
        key = None
        if self.memory is not None:
            key = await self.memory.key_for(self.session_id, token.value)
        history = self.memory.store.recall(key) if self.memory and key else []
        self.log.debug(
            "conversation_recalled", remembered=key is not None, messages=len(history)
        )

        self._auth = ClinicianBearerAuth(token.value)
        mcp = build_mcp_client(self.settings, self._auth)
        agent: Agent | None = None
        try:
            # Agent() connects to the MCP server and lists its tools (an
            # authenticated call, so a refused token fails before the model sees
            # any history): off the loop.
            agent = await asyncio.to_thread(build_agent, self.settings, mcp, history)
            async for event in agent.stream_async(prompt):
                for frame in self.tally.frames(event):
                    yield frame
            if self.memory is not None and key is not None:
                self.memory.store.keep(key, agent.messages)
        finally:
            close_agent(agent, mcp, self.log)

    def _record(self, outcome: Outcome, **fields: Any) -> bool:
        self._recorded = True
        duration_ms = round((time.perf_counter() - self._started) * 1000, 1)
        # Process CPU over the invocation: includes the MCP client's thread (and any
        # invocation running alongside), which per-thread clocks would miss.
        cpu_ms = round((time.process_time() - self._started_cpu) * 1000, 1)
        try:
            self.audit.append(
                "invocation",
                session_id=self.session_id,
                request_id=self.request_id,
                model=self.settings.model,
                model_calls=self.tally.model_calls,
                tool_calls=self.tally.tool_calls,
                obo_jtis=self.tally.obo_jtis,
                outcome=outcome,
                duration_ms=duration_ms,
                cpu_ms=cpu_ms,
                **fields,
            )
        except AuditWriteError:
            self.log.error("audit_write_failed")
            return False

        self.log.info(
            "invocation_finished",
            outcome=outcome,
            model_calls=self.tally.model_calls,
            tool_calls=len(self.tally.tool_calls),
            duration_ms=duration_ms,
        )
        return True


def build_model(settings: Settings) -> Model:
    """The model named by ``settings.model``; providers are imported on first use."""
    if settings.model == "offline":
        from trustloop.agent.offline_model import OfflineModel

        return OfflineModel(transcript_path=settings.model_transcript)

    from strands.models import BedrockModel

    return BedrockModel()


def build_mcp_client(settings: Settings, auth: ClinicianBearerAuth) -> MCPClient:
    """A new MCP client whose transport alone carries the clinician's token; the
    tool list it loads is shared per process (:mod:`trustloop.agent.tool_specs`)."""
    from trustloop.agent.tool_specs import CachedToolsMCPClient

    return CachedToolsMCPClient(
        streamable_http(settings.mcp_url, auth),
        server_url=settings.mcp_url,
        application_name="trustloop-agent-runtime",
        startup_timeout=MCP_STARTUP_TIMEOUT_S,
    )


def build_agent(
    settings: Settings, mcp: MCPClient, history: list[Any] | None = None
) -> Agent:
    """A fresh agent; ``history``: the earlier messages of this conversation."""
    from strands import Agent

    from trustloop.agent import tracing
    from trustloop.agent.denials import DenialGuard

    tracing.install()

    messages: list[Message] = list(history or [])
    return Agent(
        model=build_model(settings),
        messages=messages,
        tools=[mcp],
        system_prompt=SYSTEM_PROMPT,
        callback_handler=None,
        name="trustloop",
        hooks=[DenialGuard()],  # fresh per invocation: a denial is final per request
    )


def close_agent(agent: Agent | None, mcp: MCPClient, log: Any) -> None:
    """Stop the MCP client (and its thread) whether or not the agent was built."""
    try:
        if agent is not None:
            agent.cleanup()
        mcp.stop(None, None, None)  # idempotent; covers a failed Agent() too
    except Exception as exc:  # noqa: BLE001 - cleanup must not mask the answer
        log.warning("mcp_client_cleanup_failed", error_type=type(exc).__name__)


def describe_failure(
    exc: BaseException, *, sign_in_rejected: bool, sign_in_unverifiable: bool = False
) -> str:
    """A clinician-facing reason that carries no exception text (it could hold PHI)."""
    if sign_in_rejected:
        return "the records service did not accept your sign-in: sign in again"

    from strands.types.exceptions import (
        MCPClientInitializationError,
        ToolProviderException,
    )

    # Agent() re-raises a failed MCP start as ValueError; the cause names it.
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, MCPClientInitializationError | ToolProviderException):
            if sign_in_unverifiable:
                return (
                    "the records service is unavailable: it cannot check your "
                    "sign-in right now (identity service down); try again shortly"
                )
            return "the records service is unavailable"
        cause = cause.__cause__
    return "the agent failed to answer"
