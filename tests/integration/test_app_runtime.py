"""The app's invoker against the real agent runtime over loopback HTTP, in both modes.

The runtime is ``trustloop.agent.runtime.create_app()`` as built, served by uvicorn;
no MCP server answers, so each invocation ends in the runtime's own error frame.
What these tests prove is where the runtime found the clinician's token: its audit
line records the mode (``jwt`` from ``Authorization``, ``sigv4`` from the custom
header under a botocore SigV4 signature).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from botocore.credentials import Credentials  # type: ignore[import-untyped]
from loopback import serve_in_thread

from trustloop.agent.runtime import create_app
from trustloop.app.activity import Conversation
from trustloop.app.chat import answer
from trustloop.app.invoke import RuntimeInvoker, SigV4Signer
from trustloop.devstack.net import free_port
from trustloop.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [
    pytest.mark.integration,
    # strands 1.62: a failed MCPClient.start() leaves this coroutine un-awaited.
    pytest.mark.filterwarnings(
        "ignore:coroutine 'MCPClient.stop.<locals>._set_close_event' was never "
        "awaited:RuntimeWarning"
    ),
]

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjbGluLWFjaGVuIn0.c2lnbmF0dXJl"
# The documented example identity of AWS's SigV4 test suite: not a credential.
EXAMPLE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    state = tmp_path_factory.mktemp("app-runtime")
    settings = Settings(
        state_dir=state,
        mcp_url=f"http://127.0.0.1:{free_port()}/mcp",
        idp_url=f"http://127.0.0.1:{free_port()}",
    )
    with serve_in_thread(create_app(settings)) as url:
        yield url, settings.audit_dir / "runtime.jsonl"


def last_invocation(audit: Path) -> dict[str, Any]:
    lines = [json.loads(line) for line in audit.read_text().splitlines() if line]
    record: dict[str, Any] = lines[-1]
    return record


async def ask(invoker: RuntimeInvoker, conversation: Conversation) -> list[Any]:
    stream = answer(
        invoker,
        conversation,
        "list my patients",
        access_token=TOKEN,
        authenticator_url="http://127.0.0.1:1/authenticator",
    )
    return [json.loads(chunk.decode()[6:]) async for chunk in stream]


async def test_jwt_mode_reaches_the_runtime_as_the_bearer(
    runtime: tuple[str, Path],
) -> None:
    url, audit = runtime
    conversation = Conversation.new()
    async with httpx.AsyncClient(timeout=30) as http:
        frames = await ask(RuntimeInvoker(url, http), conversation)

    record = last_invocation(audit)
    assert record["token_mode"] == "jwt"
    assert record["session_id"] == conversation.id
    assert frames[-1]["type"] == "error"  # no MCP server: the runtime says so
    assert "sign in" not in frames[-1]["message"]


async def test_sigv4_mode_reaches_the_runtime_through_the_custom_header(
    runtime: tuple[str, Path],
) -> None:
    url, audit = runtime
    conversation = Conversation.new()
    signer = SigV4Signer(EXAMPLE, "us-east-1")
    async with httpx.AsyncClient(timeout=30) as http:
        invoker = RuntimeInvoker(url, http, mode="sigv4", signer=signer)
        frames = await ask(invoker, conversation)

    record = last_invocation(audit)
    assert record["token_mode"] == "sigv4"
    assert record["session_id"] == conversation.id
    assert "sign in" not in frames[-1]["message"]
    assert TOKEN not in audit.read_text()


async def test_a_signed_request_without_the_user_token_is_refused_sign_in(
    runtime: tuple[str, Path],
) -> None:
    url, audit = runtime
    signer = SigV4Signer(EXAMPLE, "us-east-1")
    body = b'{"prompt": "list my patients"}'
    headers = signer.sign(
        f"{url}/invocations", body, {"Content-Type": "application/json"}
    )
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(f"{url}/invocations", content=body, headers=headers)

    assert "sign in required" in response.text
    assert last_invocation(audit)["reason"] == "sign_in_required"
