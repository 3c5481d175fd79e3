"""The runtime's frames as the browser sees them, and the activity they record."""

from __future__ import annotations

import json

import httpx
import pytest

from trustloop.app import chat
from trustloop.app.activity import Conversation
from trustloop.app.invoke import RuntimeInvoker
from trustloop.app.runtime_client import parse_frame
from trustloop.devstack.net import free_port

AUTH = "http://127.0.0.1:9400/authenticator"


def frames(raw: list[bytes]) -> list[dict[str, object]]:
    return [json.loads(item.decode()[len("data: ") :]) for item in raw]


def test_a_tool_frame_becomes_an_activity_entry_with_ids_only() -> None:
    conversation = Conversation.new()
    frame = {
        "type": "tool",
        "name": "read_patient_record",
        "status": "success",
        "obo_jti": "6f1c-22",
        "patient_id": "abc-123",
        "access_token": "eyJ.secret.value",
    }

    [out] = chat.translate(frame, conversation, AUTH)

    assert out["tool"] == "read_patient_record"
    assert out["patient"] == "Patient/abc-123"
    assert out["decision"] == "allowed"
    assert out["obo_jti"] == "6f1c-22"
    assert "secret" not in json.dumps(out)
    assert conversation.calls[0].wire() == {k: v for k, v in out.items() if k != "type"}


@pytest.mark.parametrize(
    ("frame", "decision"),
    [
        ({"status": "error"}, "refused"),
        ({"status": "error", "error_code": "access_denied"}, "refused"),
        ({"status": "error", "error_code": "temporarily_unavailable"}, "failed"),
    ],
)
def test_a_failed_tool_call_is_refused_or_failed(
    frame: dict[str, object], decision: str
) -> None:
    conversation = Conversation.new()

    [out] = chat.translate({"type": "tool", "name": "x", **frame}, conversation, AUTH)

    assert out["decision"] == decision


def test_malformed_identifiers_never_reach_the_page() -> None:
    conversation = Conversation.new()
    frame = {
        "type": "tool",
        "name": "<script>",
        "status": "success",
        "obo_jti": "a b\nc",
        "patient_id": "../../etc",
    }

    [out] = chat.translate(frame, conversation, AUTH)

    assert (out["tool"], out["patient"], out["obo_jti"]) == ("unknown", None, None)


def test_a_progress_frame_or_a_pending_tool_shows_the_waiting_state() -> None:
    conversation = Conversation.new()
    progress = {"type": "progress", "message": "approve on your device"}
    pending = {"type": "tool", "name": "read_patient_record", "status": "pending"}

    [first] = chat.translate(progress, conversation, AUTH)
    [second] = chat.translate(pending, conversation, AUTH)

    assert first == {
        "type": "waiting",
        "message": "approve on your device",
        "authenticator_url": AUTH,
    }
    assert second["type"] == "waiting"
    assert second["message"] == chat.WAITING_MESSAGE
    assert conversation.calls == []


def test_a_runtime_error_frame_is_a_plain_message() -> None:
    [out] = chat.translate(
        {"error": "The records service is unavailable"}, Conversation.new(), AUTH
    )

    assert out == {
        "type": "error",
        "code": "runtime_error",
        "message": "The assistant could not answer: the records service is unavailable",
    }


def test_sse_lines_parse_back_and_junk_is_skipped() -> None:
    assert parse_frame('data: {"type": "done"}') == {"type": "done"}
    assert parse_frame('data: "hello"') == {"type": "text", "text": "hello"}
    assert parse_frame(": keep-alive") is None
    assert parse_frame("data: {not json") is None


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "JSON"),
        ({"conversation_id": "c"}, "Type a question"),
        ({"conversation_id": "c", "message": "   "}, "Type a question"),
        ({"message": "hi"}, "not known"),
        ({"conversation_id": "c", "message": "x" * 4001}, "limited"),
    ],
)
def test_a_question_that_cannot_be_sent_says_why(payload: object, message: str) -> None:
    with pytest.raises(chat.QuestionError, match=message):
        chat.read_question(payload)


async def test_a_runtime_that_is_down_gives_one_clear_error_frame() -> None:
    async with httpx.AsyncClient() as http:
        invoker = RuntimeInvoker(f"http://127.0.0.1:{free_port()}", http)
        raw = [
            item
            async for item in chat.answer(
                invoker,
                Conversation.new(),
                "list my patients",
                access_token="tok",
                authenticator_url=AUTH,
            )
        ]

    assert frames(raw) == [
        {"type": "error", "code": "runtime_unavailable", "message": chat.RUNTIME_DOWN}
    ]
