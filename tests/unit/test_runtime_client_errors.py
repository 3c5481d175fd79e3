"""``invoke`` (the CLI's and the load benchmark's runtime client) when the runtime
goes away: an InvocationError that names the runtime, never the token."""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

import pytest

from trustloop.app.runtime_client import InvocationError, invoke
from trustloop.devstack.net import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

TOKEN = "eyJhbGciOiJFUzI1NiJ9.secret-looking.token"


@pytest.fixture
def cut_mid_answer() -> Iterator[str]:
    """A runtime that starts a streamed answer, then drops the connection."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
                b'1b\r\ndata: {"type":"text","text":"\r\n'
            )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    thread.join(timeout=5)
    server.close()


def test_a_runtime_that_drops_the_answer_is_an_invocation_error(
    cut_mid_answer: str,
) -> None:
    frames = invoke(
        cut_mid_answer, "list my patients", access_token=TOKEN, session_id="s"
    )

    with pytest.raises(InvocationError, match="stopped answering") as caught:
        list(frames)

    assert cut_mid_answer in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None  # no httpx request (headers) attached


def test_no_runtime_listening_is_an_invocation_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(InvocationError, match="is the stack still running"):
        list(invoke(url, "hello", access_token=TOKEN, session_id="s"))
