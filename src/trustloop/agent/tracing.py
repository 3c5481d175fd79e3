"""Strands' tracer, minus the message serialisation no span records.

Before every model call Strands' tracer serialises the whole conversation (every
message, every tool result: whole FHIR charts) with a pure-Python JSON encoder
and hands it to its span as an event, even when no tracer provider is set and
the span records nothing (OpenTelemetry's default non-recording span drops it).
That was about 6 % of the runtime's CPU per question, and grows with the
conversation. :class:`QuietTracer` does the same work whenever the span records
(a tracer provider is configured), and skips it when it does not: what any
exporter sees is unchanged.

Strands keeps one process-wide tracer (``strands.telemetry.tracer.get_tracer``);
:func:`install` puts a :class:`QuietTracer` there before the first agent is built.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from strands.telemetry import tracer as strands_tracer

if TYPE_CHECKING:
    from opentelemetry.trace import Span
    from strands.types.content import Messages

_lock = threading.Lock()


class QuietTracer(strands_tracer.Tracer):
    """Strands' tracer; message events only on spans that record."""

    def _add_event_messages(self, span: Span, messages: Messages) -> None:
        if span is None or not span.is_recording():
            return
        super()._add_event_messages(span, messages)


def install() -> None:
    """Make Strands' process-wide tracer a :class:`QuietTracer` (idempotent)."""
    with _lock:
        if not isinstance(strands_tracer._tracer_instance, QuietTracer):
            # strands declares the global as plain None.
            strands_tracer._tracer_instance = QuietTracer()  # type: ignore[assignment]
