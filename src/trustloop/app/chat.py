"""One question, streamed: the runtime's frames, translated for the browser as SSE.

Browser frames (``data: <json>``, one per event)::

    {"type": "text", "text"}                     answer text as it is produced
    {"type": "waiting", "message", "authenticator_url"}
                                                 a tool waits for the clinician's
                                                 approval (step-up or consent)
    {"type": "tool", "tool", "patient", "decision", "obo_jti", "at"}
                                                 a tool call finished (activity)
    {"type": "done"}                             the answer is complete
    {"type": "error", "code", "message"}         a plain message; always last

The runtime's own frames are in docs/contracts.md ("Agent runtime"); a
``{"type": "progress", "message"}`` frame (or a ``tool`` frame whose status is
``pending``) becomes ``waiting``. No frame ever carries a token.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import structlog

from trustloop.app.invoke import RuntimeInvokeError, RuntimeUnavailableError

if TYPE_CHECKING:
    from trustloop.app.activity import Conversation
    from trustloop.app.invoke import Frame, RuntimeInvoker

MAX_QUESTION_CHARS = 4000
MAX_MESSAGE_CHARS = 500
WAITING_MESSAGE = "Waiting for your approval: approve or deny it on your authenticator."
RUNTIME_DOWN = (
    "The assistant is not available right now. Nothing was read or changed. "
    "Try again in a moment."
)
CUT_OFF = "The answer was cut off before it finished. Try asking again."
_PENDING = {"pending", "waiting"}

log = structlog.get_logger("trustloop.app")


class QuestionError(ValueError):
    """The question cannot be sent; the message is safe to show."""


def read_question(payload: object) -> tuple[str, str]:
    """``(conversation_id, question)`` from ``{"conversation_id", "message"}``."""
    if not isinstance(payload, dict):
        raise QuestionError("Send a question as JSON.")
    conversation_id = payload.get("conversation_id")
    question = payload.get("message")
    if not isinstance(conversation_id, str) or not conversation_id:
        raise QuestionError("This conversation is not known. Start a new one.")
    if not isinstance(question, str) or not question.strip():
        raise QuestionError("Type a question first.")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"Questions are limited to {MAX_QUESTION_CHARS} characters."
        )
    return conversation_id, question.strip()


def sse(frame: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``frame`` as JSON."""
    return f"data: {json.dumps(frame, separators=(',', ':'))}\n\n".encode()


async def answer(
    invoker: RuntimeInvoker,
    conversation: Conversation,
    question: str,
    *,
    access_token: str,
    authenticator_url: str,
) -> AsyncIterator[bytes]:
    """The browser's SSE stream for one question; ends with ``done`` or ``error``."""
    finished = False
    try:
        frames = invoker.frames(
            question, access_token=access_token, session_id=conversation.id
        )
        async for frame in frames:
            for out in translate(frame, conversation, authenticator_url):
                finished = finished or out["type"] in {"done", "error"}
                yield sse(out)
            if finished:
                return
    except RuntimeUnavailableError as exc:
        log.warning("runtime_unavailable", reason=str(exc))
        yield sse(error("runtime_unavailable", RUNTIME_DOWN))
        return
    except RuntimeInvokeError as exc:
        log.warning("runtime_invoke_failed", reason=str(exc))
        yield sse(error("runtime_unavailable", RUNTIME_DOWN))
        return
    if not finished:
        yield sse(error("cut_off", CUT_OFF))


def translate(
    frame: Frame, conversation: Conversation, authenticator_url: str
) -> list[dict[str, Any]]:
    """The browser frames for one runtime frame (none for one it does not know)."""
    if "error" in frame and "type" not in frame:
        return [error("runtime_error", _runtime_error(frame["error"]))]
    kind = frame.get("type")
    if kind == "text" and isinstance(frame.get("text"), str):
        return [{"type": "text", "text": frame["text"]}]
    if kind == "progress" or (kind == "tool" and frame.get("status") in _PENDING):
        return [waiting(frame.get("message"), authenticator_url)]
    if kind == "tool":
        call = conversation.record(frame)
        return [{"type": "tool", **call.wire()}]
    if kind == "done":
        return [{"type": "done"}]
    return []


def waiting(message: object, authenticator_url: str) -> dict[str, Any]:
    text = message if isinstance(message, str) and message.strip() else None
    return {
        "type": "waiting",
        "message": _clip(text or WAITING_MESSAGE),
        "authenticator_url": authenticator_url,
    }


def error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": _clip(message)}


def _runtime_error(value: object) -> str:
    """The runtime's error frames are written for the clinician; say them plainly."""
    text = value if isinstance(value, str) and value.strip() else "no reason given"
    text = text.strip()
    return "The assistant could not answer: " + text[0].lower() + text[1:]


def _clip(text: str) -> str:
    return (
        text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
    )
