"""``offline``: a deterministic clinical planner behind Strands' model interface.

This is a planner for demos and tests, not a language model. It reads the clinician's
last question and the tool results since, decides the next step with fixed rules
(:mod:`trustloop.agent.planner`) and speaks Strands' Converse-style stream so the real
agent loop runs unchanged: tool-call blocks, tool execution over MCP, a final answer.

Events follow ``strands.types.streaming.StreamEvent`` (strands-agents 1.62):
``messageStart``; for a tool call ``contentBlockStart`` (``toolUse`` name and id),
``contentBlockDelta`` (``toolUse.input`` as a JSON string) and ``contentBlockStop``,
after a text block when the planner says something first (a consent or step-up
notice);
for an answer ``contentBlockDelta`` text pieces and ``contentBlockStop``; then
``messageStop`` (``tool_use`` or ``end_turn``) and ``metadata``.

With ``transcript_path`` every :meth:`OfflineModel.stream` input (messages, system
prompt, tool specs) is appended to that file as one JSON line: a dev/test capture that
lets a test prove no secret ever reaches the model. It holds chart data: never point
it at a shared location.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from strands.models.model import BaseModelConfig, Model

from trustloop.agent import planner

if TYPE_CHECKING:
    from strands.types.content import Messages, SystemContentBlock
    from strands.types.streaming import StreamEvent
    from strands.types.tools import ToolSpec

T = TypeVar("T", bound=BaseModel)


class OfflineModelError(Exception):
    """The offline planner was asked for something it does not do."""


class OfflineModelConfig(BaseModelConfig, total=False):
    """``transcript_path``: where to append model inputs, or None for no capture."""

    transcript_path: Path | None


class OfflineModel(Model):
    """Deterministic clinical planner; not a language model (see the module docstring)."""

    def __init__(self, *, transcript_path: Path | None = None) -> None:
        self._config: OfflineModelConfig = {"transcript_path": transcript_path}
        self._lock = threading.Lock()
        self._tool_uses = 0

    def update_config(self, **model_config: Any) -> None:
        unknown = set(model_config) - set(OfflineModelConfig.__annotations__)
        if unknown:
            raise OfflineModelError(
                f"unknown offline model settings: {sorted(unknown)}"
            )
        self._config.update(model_config)  # type: ignore[typeddict-item]

    def get_config(self) -> OfflineModelConfig:
        return self._config

    def structured_output(
        self,
        output_model: type[T],
        prompt: Messages,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[dict[str, T | Any], None]:
        """Not supported: the planner only plans tool calls and writes fixed answers."""
        raise OfflineModelError(
            "the offline planner does not produce structured output"
        )

    async def stream(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        *,
        system_prompt_content: list[SystemContentBlock] | None = None,
        **kwargs: Any,
    ) -> AsyncIterable[StreamEvent]:
        """One planning step as a Converse-style event stream."""
        started = time.perf_counter()
        self._capture(messages, tool_specs, system_prompt, system_prompt_content)

        tools = {spec["name"] for spec in tool_specs or []}
        step = planner.plan(planner.read_turn(messages), tools)
        if isinstance(step, planner.CallTool):
            events = self._tool_call_events(step)
        else:
            events = _answer_events(step.text)

        for event in events:
            yield event
        latency = int((time.perf_counter() - started) * 1000)
        yield {
            "metadata": {
                "usage": {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0},
                "metrics": {"latencyMs": latency},
            }
        }

    def _tool_call_events(self, step: planner.CallTool) -> Iterator[StreamEvent]:
        with self._lock:
            self._tool_uses += 1
            tool_use_id = f"tooluse_offline_{self._tool_uses}"

        yield {"messageStart": {"role": "assistant"}}
        if step.preface:  # e.g. "approve the change on your device", said first
            yield {"contentBlockDelta": {"delta": {"text": step.preface}}}
            yield {"contentBlockStop": {}}
        yield {
            "contentBlockStart": {
                "start": {"toolUse": {"name": step.name, "toolUseId": tool_use_id}}
            }
        }
        yield {
            "contentBlockDelta": {
                "delta": {"toolUse": {"input": json.dumps(step.arguments)}}
            }
        }
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "tool_use"}}

    def _capture(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None,
        system_prompt: str | None,
        system_prompt_content: list[SystemContentBlock] | None,
    ) -> None:
        path = self._config.get("transcript_path")
        if path is None:
            return

        record = {
            "time": datetime.now(UTC).isoformat(),
            "system_prompt": system_prompt,
            "system_prompt_content": system_prompt_content,
            "tool_specs": tool_specs,
            "messages": messages,
        }
        line = json.dumps(record, default=str, ensure_ascii=False) + "\n"
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)


def _answer_events(text: str) -> Iterator[StreamEvent]:
    yield {"messageStart": {"role": "assistant"}}
    for piece in text.splitlines(keepends=True):
        yield {"contentBlockDelta": {"delta": {"text": piece}}}
    yield {"contentBlockStop": {}}
    yield {"messageStop": {"stopReason": "end_turn"}}
