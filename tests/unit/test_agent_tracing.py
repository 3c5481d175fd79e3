"""The runtime's Strands tracer skips message serialisation only when nothing records."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import INVALID_SPAN
from strands.telemetry import tracer as strands_tracer
from strands.types.content import Messages

from trustloop.agent import tracing
from trustloop.agent.tracing import QuietTracer

MESSAGES: Messages = [{"role": "user", "content": [{"text": "chart of Patient/p-1"}]}]


@pytest.fixture
def serialised(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    real = strands_tracer.serialize

    def counting(obj: Any) -> str:
        calls.append(obj)
        return real(obj)

    monkeypatch.setattr(strands_tracer, "serialize", counting)
    return calls


def test_messages_are_not_serialised_for_a_span_that_records_nothing(
    serialised: list[Any],
) -> None:
    QuietTracer()._add_event_messages(INVALID_SPAN, MESSAGES)

    assert serialised == []


def test_messages_are_serialised_onto_a_span_that_records(
    serialised: list[Any],
) -> None:
    span = TracerProvider().get_tracer("test").start_span("chat")

    QuietTracer()._add_event_messages(span, MESSAGES)
    span.end()

    assert serialised
    events = getattr(span, "events", ())
    assert events
    assert "chart of Patient/p-1" in str(events[0].attributes)


def test_install_makes_the_quiet_tracer_the_one_strands_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(strands_tracer, "_tracer_instance", None)

    tracing.install()
    first = strands_tracer.get_tracer()
    tracing.install()

    assert isinstance(first, QuietTracer)
    assert strands_tracer.get_tracer() is first
