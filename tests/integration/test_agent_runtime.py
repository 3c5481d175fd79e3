"""The agent runtime over real HTTP, against a small real MCP server on loopback.

The runtime is ``create_app()`` as built, served by uvicorn on a free port; the MCP
server is ``mcp.server.mcpserver.MCPServer`` with the two contract tools, stateless
streamable HTTP, behind an ASGI wrapper that records every request's ``Authorization``
header and body. A small IdP on loopback serves discovery and the JWKS whose key
signs the clinicians' tokens of the conversation-memory tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from loopback import serve_in_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trustloop.agent.invocation import Invocation, UserToken
from trustloop.agent.runtime import (
    MAX_PROMPT_CHARS,
    SESSION_HEADER,
    USER_TOKEN_HEADER,
    create_app,
)
from trustloop.agent.sessions import ConversationMemory
from trustloop.agent.tool_specs import forget_tools
from trustloop.audit.chain import AuditLog, verify_chain
from trustloop.devstack.net import free_port
from trustloop.settings import Settings

pytestmark = pytest.mark.integration

# strands 1.62: when MCPClient.start() fails, its own stop() schedules a coroutine on
# the background loop that already ended; the coroutine is dropped with this warning.
failed_mcp_start = pytest.mark.filterwarnings(
    "ignore:coroutine 'MCPClient.stop.<locals>._set_close_event' was never awaited"
    ":RuntimeWarning"
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ALDA_ID = "6f1c2d9e-1b7a-4c55-9a51-3c0e8f2b7d10"
DENIED_ID = "0b5d9a52-2f4e-4a77-8c1e-7d6a1f0c9e33"
REVOKED_TOKEN = "revoked.token.value"

ROSTER = {
    "patients": [
        {
            "id": ALDA_ID,
            "name": "Alda Carter",
            "birth_date": "1961-04-12",
            "gender": "female",
            "sensitive": False,
        },
        {
            "id": DENIED_ID,
            "name": "Bo Denied",
            "birth_date": "1950-01-01",
            "gender": "male",
            "sensitive": True,
        },
    ],
}
CHART = {
    "patient": {
        "resourceType": "Patient",
        "id": ALDA_ID,
        "name": [{"use": "official", "family": "Carter", "given": ["Alda"]}],
        "gender": "female",
        "birthDate": "1961-04-12",
    },
    "conditions": [
        {
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"text": "Essential hypertension"},
        }
    ],
    "medications": [],
    "observations": [
        {
            "resourceType": "Observation",
            "code": {"text": "Body Weight"},
            "valueQuantity": {"value": 71.5, "unit": "kg"},
            "effectiveDateTime": "2024-11-02T10:00:00+00:00",
        }
    ],
    "obo_jti": "jti-chart",
}


@dataclass
class McpRecorder:
    """What the MCP server received: headers, bodies and tool calls."""

    authorizations: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    tool_calls: list[tuple[str, str | None]] = field(default_factory=list)
    tool_headers: list[str | None] = field(default_factory=list)


@dataclass(frozen=True)
class Runtime:
    url: str
    settings: Settings
    mcp: McpRecorder

    @property
    def audit_path(self) -> Path:
        return self.settings.audit_dir / "runtime.jsonl"

    @property
    def transcript(self) -> Path:
        assert self.settings.model_transcript is not None
        return self.settings.model_transcript

    def audit_lines(self) -> list[dict[str, Any]]:
        text = self.audit_path.read_text()
        return [json.loads(line) for line in text.splitlines()]


def records_server(recorder: McpRecorder) -> MCPServer:
    server = MCPServer("test-records", log_level="WARNING")

    @server.tool()
    def list_my_patients(ctx: Context) -> CallToolResult:
        """List the patients on the signed-in clinician's care team."""
        recorder.tool_calls.append(("list_my_patients", None))
        recorder.tool_headers.append((ctx.headers or {}).get("authorization"))
        authorization = (ctx.headers or {}).get("authorization", "")
        return contract_result({**ROSTER, "obo_jti": roster_jti(authorization)})

    @server.tool()
    def read_patient_record(patient_id: str, ctx: Context) -> CallToolResult:
        """Read one patient's chart by FHIR id."""
        recorder.tool_calls.append(("read_patient_record", patient_id))
        recorder.tool_headers.append((ctx.headers or {}).get("authorization"))
        if patient_id == DENIED_ID:
            text = f"access_denied: Patient/{patient_id} needs step-up approval"
            return CallToolResult(
                is_error=True, content=[TextContent(type="text", text=text)]
            )
        return contract_result(CHART)

    return server


def roster_jti(authorization: str) -> str:
    """The fake roster's ``obo_jti`` names the credential it was called with."""
    return "jti-roster-" + hashlib.sha256(authorization.encode()).hexdigest()[:12]


def contract_result(data: dict[str, Any]) -> CallToolResult:
    """The JSON object as structured content and as the text content (contracts.md)."""
    text = TextContent(type="text", text=json.dumps(data))
    return CallToolResult(content=[text], structured_content=data)


def recording(app: ASGIApp, recorder: McpRecorder) -> ASGIApp:
    """Record each request's Authorization and body; answer 401 to the revoked token."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        authorization = headers.get("authorization", "")
        recorder.authorizations.append(authorization)
        if authorization == f"Bearer {REVOKED_TOKEN}":
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return

        async def tee() -> Message:
            message = await receive()
            recorder.bodies.append(message.get("body", b""))
            return message

        await app(scope, tee, send)

    return asgi


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[tuple[str, McpRecorder]]:
    recorder = McpRecorder()
    app = records_server(recorder).streamable_http_app(stateless_http=True)
    with serve_in_thread(recording(app, recorder), free_port()) as url:
        yield f"{url}/mcp", recorder


@dataclass(frozen=True)
class Idp:
    """Discovery and JWKS on loopback; signs clinicians' access tokens (RFC 9068)."""

    issuer: str
    key: ECKey

    def token(self, sub: str, audience: str) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": sub, "aud": [audience], "iat": now,
                  "exp": now + 900, "jti": secrets.token_hex(8)}  # fmt: skip
        return jwt.encode(
            {"alg": "ES256", "kid": "k1", "typ": "at+jwt"}, claims, self.key
        )


@pytest.fixture(scope="module")
def idp() -> Iterator[Idp]:
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"

    async def discovery(request: Request) -> JSONResponse:
        return JSONResponse({"issuer": issuer, "jwks_uri": f"{issuer}/oauth2/jwks"})

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse({"keys": [key.as_dict(private=False)]})

    app = Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/oauth2/jwks", jwks),
        ]
    )
    with serve_in_thread(app, port):
        yield Idp(issuer, key)


@pytest.fixture
def runtime(
    mcp_url: tuple[str, McpRecorder], idp: Idp, tmp_path: Path
) -> Iterator[Runtime]:
    url, recorder = mcp_url
    for records in (recorder.authorizations, recorder.bodies, recorder.tool_calls):
        records.clear()
    recorder.tool_headers.clear()

    port = free_port()
    settings = Settings(
        state_dir=tmp_path / "state",
        idp_url=idp.issuer,
        mcp_url=url,
        runtime_url=f"http://127.0.0.1:{port}",
        model="offline",
        model_transcript=tmp_path / "model-transcript.jsonl",
    )
    with serve_in_thread(create_app(settings), port) as runtime_url:
        yield Runtime(runtime_url, settings, recorder)


@pytest.fixture
def token() -> str:
    """A clinician token shaped like a JWT, unique to the test."""
    return f"eyJ0eXAiOiJhdCtqd3QifQ.{secrets.token_urlsafe(32)}.{secrets.token_urlsafe(16)}"


def invoke(
    runtime: Runtime, body: Any, headers: dict[str, str] | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """POST /invocations; the raw SSE body and its decoded frames."""
    response = httpx.post(
        f"{runtime.url}/invocations", json=body, headers=headers or {}, timeout=30
    )
    assert response.status_code == 200
    frames = [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]
    return response.text, frames


def bearer(token: str, session: str = "session-1") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", SESSION_HEADER: session}


def answer_text(frames: list[dict[str, Any]]) -> str:
    return "".join(f["text"] for f in frames if f.get("type") == "text")


def test_chart_question_streams_tool_frames_text_and_done(
    runtime: Runtime, token: str
) -> None:
    _, frames = invoke(
        runtime, {"prompt": "show me Alda Carter's chart"}, bearer(token)
    )

    tools = [f for f in frames if f.get("type") == "tool"]
    assert tools == [
        {
            "type": "tool",
            "name": "list_my_patients",
            "status": "success",
            "obo_jti": roster_jti(f"Bearer {token}"),
            "patient_id": None,
            "error_code": None,
        },
        {
            "type": "tool",
            "name": "read_patient_record",
            "status": "success",
            "obo_jti": "jti-chart",
            "patient_id": ALDA_ID,
            "error_code": None,
        },
    ]
    assert "Chart for Alda Carter" in answer_text(frames)
    assert "Body Weight: 71.5 kg (2024-11-02)" in answer_text(frames)
    assert frames[-1] == {"type": "done"}
    assert runtime.mcp.tool_calls == [
        ("list_my_patients", None),
        ("read_patient_record", ALDA_ID),
    ]


def test_concurrent_invocations_each_use_their_own_token(runtime: Runtime) -> None:
    """Per-invocation MCP clients: no clinician's token leaks into another's calls."""
    tokens = [f"clinician-{n}.{secrets.token_urlsafe(16)}" for n in range(4)]
    results: dict[str, list[dict[str, Any]]] = {}

    def ask(token: str) -> None:
        _, results[token] = invoke(
            runtime, {"prompt": "list my patients"}, bearer(token)
        )

    threads = [threading.Thread(target=ask, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    for token in tokens:
        [tool_frame] = [f for f in results[token] if f.get("type") == "tool"]
        assert tool_frame["obo_jti"] == roster_jti(f"Bearer {token}")
    assert set(runtime.mcp.authorizations) == {f"Bearer {t}" for t in tokens}


def test_token_travels_only_in_the_mcp_authorization_header(
    runtime: Runtime, token: str, capfd: pytest.CaptureFixture[str]
) -> None:
    raw, _ = invoke(runtime, {"prompt": "show me Alda Carter's chart"}, bearer(token))

    assert set(runtime.mcp.authorizations) == {f"Bearer {token}"}
    assert runtime.mcp.tool_headers == [f"Bearer {token}"] * 2
    assert not any(token.encode() in body for body in runtime.mcp.bodies)
    assert token not in runtime.transcript.read_text()
    assert token not in runtime.audit_path.read_text()
    assert token not in raw
    out, err = capfd.readouterr()
    assert token not in out + err


def test_audit_line_has_ids_counts_and_jtis_but_no_content(
    runtime: Runtime, token: str
) -> None:
    invoke(runtime, {"prompt": "show me Alda Carter's chart"}, bearer(token, "sess-42"))

    [line] = runtime.audit_lines()
    assert line["event"] == "invocation"
    assert line["system"] == "runtime"
    assert line["session_id"] == "sess-42"
    assert line["request_id"]
    assert line["model_calls"] == 3
    assert [c["name"] for c in line["tool_calls"]] == [
        "list_my_patients",
        "read_patient_record",
    ]
    assert line["obo_jtis"] == [roster_jti(f"Bearer {token}"), "jti-chart"]
    assert line["outcome"] == "answered"
    assert line["token_mode"] == "jwt"
    assert line["cpu_ms"] >= 0
    text = runtime.audit_path.read_text()
    assert "Alda" not in text
    assert "hypertension" not in text
    assert verify_chain(runtime.audit_path) is None


def test_missing_token_is_refused_before_any_mcp_call(runtime: Runtime) -> None:
    _, frames = invoke(runtime, {"prompt": "list my patients"})

    assert frames == [{"error": "sign in required"}]
    assert runtime.mcp.authorizations == []
    assert not runtime.transcript.exists()
    [line] = runtime.audit_lines()
    assert (line["outcome"], line["reason"]) == ("rejected", "sign_in_required")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer two words"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {USER_TOKEN_HEADER: "not a token"},
    ],
)
def test_malformed_token_is_refused(runtime: Runtime, headers: dict[str, str]) -> None:
    _, frames = invoke(runtime, {"prompt": "list my patients"}, headers)

    assert frames == [{"error": "sign in required"}]
    assert runtime.mcp.authorizations == []


def test_sigv4_mode_reads_the_custom_user_token_header(
    runtime: Runtime, token: str
) -> None:
    headers = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1",
        USER_TOKEN_HEADER: token,
    }

    _, frames = invoke(runtime, {"prompt": "list my patients"}, headers)

    assert frames[-1] == {"type": "done"}
    assert "- Alda Carter, born 1961-04-12" in answer_text(frames)
    assert "- Bo Denied, born 1950-01-01 (restricted)" in answer_text(frames)
    assert set(runtime.mcp.authorizations) == {f"Bearer {token}"}
    assert runtime.audit_lines()[0]["token_mode"] == "sigv4"


@pytest.mark.parametrize(
    "body",
    [
        {"question": "list my patients"},
        {"prompt": 42},
        ["list my patients"],
        {"prompt": "x" * (MAX_PROMPT_CHARS + 1)},
    ],
)
def test_invalid_payload_is_refused(runtime: Runtime, token: str, body: Any) -> None:
    _, frames = invoke(runtime, body, bearer(token))

    assert len(frames) == 1
    assert frames[0]["error"].startswith("invalid request:")
    assert runtime.mcp.authorizations == []
    assert runtime.audit_lines()[0]["reason"] == "invalid_request"


def test_denial_is_relayed_once_and_not_retried(runtime: Runtime, token: str) -> None:
    _, frames = invoke(runtime, {"prompt": "show me Bo Denied's chart"}, bearer(token))

    assert runtime.mcp.tool_calls == [
        ("list_my_patients", None),
        ("read_patient_record", DENIED_ID),
    ]
    tool_frames = [f for f in frames if f.get("type") == "tool"]
    assert tool_frames[-1] == {
        "type": "tool",
        "name": "read_patient_record",
        "status": "error",
        "obo_jti": None,
        "patient_id": DENIED_ID,
        "error_code": "access_denied",
    }
    assert "access_denied: Patient/" in answer_text(frames)
    assert frames[-1] == {"type": "done"}
    assert runtime.audit_lines()[0]["outcome"] == "refused"


@failed_mcp_start
def test_token_refused_by_the_mcp_server_asks_to_sign_in_again(
    runtime: Runtime,
) -> None:
    _, frames = invoke(runtime, {"prompt": "list my patients"}, bearer(REVOKED_TOKEN))

    assert frames[-1] == {
        "error": "the records service did not accept your sign-in: sign in again"
    }
    assert runtime.audit_lines()[0]["outcome"] == "error"


@failed_mcp_start
def test_unreachable_mcp_server_is_a_clear_error(tmp_path: Path, token: str) -> None:
    port = free_port()
    settings = Settings(
        state_dir=tmp_path,
        mcp_url=f"http://127.0.0.1:{free_port()}/mcp",
        runtime_url=f"http://127.0.0.1:{port}",
    )
    with serve_in_thread(create_app(settings), port) as url:
        runtime = Runtime(url, settings, McpRecorder())
        _, frames = invoke(runtime, {"prompt": "list my patients"}, bearer(token))

    assert frames == [{"error": "the records service is unavailable"}]


def test_ping_reports_status_and_time_of_last_update(runtime: Runtime) -> None:
    response = httpx.get(f"{runtime.url}/ping")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "Healthy"
    assert abs(body["time_of_last_update"] - time.time()) < 3600


def test_module_entrypoint_serves_ping_and_a_chart(
    mcp_url: tuple[str, McpRecorder], tmp_path: Path, token: str
) -> None:
    """``python -m trustloop.agent`` binds runtime_url and never logs the token."""
    url, _ = mcp_url
    port = free_port()
    env = {
        **os.environ,
        "TRUSTLOOP_STATE_DIR": str(tmp_path),
        "TRUSTLOOP_MCP_URL": url,
        "TRUSTLOOP_RUNTIME_URL": f"http://127.0.0.1:{port}",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "trustloop.agent"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_ping(base)
        runtime = Runtime(base, Settings(state_dir=tmp_path), McpRecorder())
        _, frames = invoke(
            runtime, {"prompt": "show me Alda Carter's chart"}, bearer(token)
        )
    finally:
        process.terminate()
        out, err = process.communicate(timeout=10)

    assert frames[-1] == {"type": "done"}
    assert '"event": "runtime_starting"' in err
    assert token not in out + err
    assert token not in (tmp_path / "audit" / "runtime.jsonl").read_text()


def _wait_for_ping(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ping", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("runtime did not answer /ping")


def _model_inputs(runtime: Runtime) -> list[dict[str, Any]]:
    lines = runtime.transcript.read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_follow_up_in_the_same_session_shares_the_conversation(
    runtime: Runtime, idp: Idp
) -> None:
    token = idp.token("clin-achen", runtime.settings.mcp_resource)
    invoke(runtime, {"prompt": "show me Alda Carter's chart"}, bearer(token, "s-1"))

    _, frames = invoke(runtime, {"prompt": "show me her chart"}, bearer(token, "s-1"))

    assert runtime.mcp.tool_calls[-1] == ("read_patient_record", ALDA_ID)
    assert "Chart for Alda Carter" in answer_text(frames)
    tool_frames = [f["name"] for f in frames if f.get("type") == "tool"]
    assert tool_frames == ["read_patient_record"]  # earlier turns are not replayed
    assert runtime.audit_lines()[-1]["model_calls"] == 2
    last_input = _model_inputs(runtime)[-1]["messages"]
    assert last_input[0]["content"][0]["text"] == "show me Alda Carter's chart"


def test_another_clinician_with_the_same_session_id_sees_none_of_it(
    runtime: Runtime, idp: Idp
) -> None:
    audience = runtime.settings.mcp_resource
    achen = idp.token("clin-achen", audience)
    bokafor = idp.token("clin-bokafor", audience)
    invoke(runtime, {"prompt": "show me Alda Carter's chart"}, bearer(achen, "s-2"))
    seen = len(_model_inputs(runtime))

    _, frames = invoke(runtime, {"prompt": "show me her chart"}, bearer(bokafor, "s-2"))

    assert answer_text(frames).startswith("Which patient do you mean?")
    assert runtime.mcp.tool_calls == [
        ("list_my_patients", None),
        ("read_patient_record", ALDA_ID),
    ]
    for model_input in _model_inputs(runtime)[seen:]:
        assert [m["role"] for m in model_input["messages"]] == ["user"]
        assert "Alda" not in json.dumps(model_input)


def test_a_token_that_does_not_validate_gets_no_memory(
    runtime: Runtime, idp: Idp
) -> None:
    forger = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    genuine = idp.token("clin-achen", runtime.settings.mcp_resource)
    forged = Idp(idp.issuer, forger).token("clin-achen", runtime.settings.mcp_resource)
    invoke(runtime, {"prompt": "show me Alda Carter's chart"}, bearer(genuine, "s-3"))

    _, frames = invoke(runtime, {"prompt": "show me her chart"}, bearer(forged, "s-3"))

    assert answer_text(frames).startswith("Which patient do you mean?")


def test_a_new_session_id_starts_a_new_conversation(runtime: Runtime, idp: Idp) -> None:
    token = idp.token("clin-achen", runtime.settings.mcp_resource)
    invoke(runtime, {"prompt": "show me Alda Carter's chart"}, bearer(token, "s-4"))

    _, frames = invoke(runtime, {"prompt": "show me her chart"}, bearer(token, "s-5"))

    assert answer_text(frames).startswith("Which patient do you mean?")


async def test_conversation_memory_holds_the_turn_but_never_the_token(
    mcp_url: tuple[str, McpRecorder], idp: Idp, tmp_path: Path
) -> None:
    url, _ = mcp_url
    settings = Settings(state_dir=tmp_path, idp_url=idp.issuer, mcp_url=url)
    memory = ConversationMemory.for_settings(settings)
    token = idp.token("clin-achen", settings.mcp_resource)
    run = Invocation(
        settings,
        AuditLog(tmp_path / "runtime.jsonl", "runtime"),
        session_id="s-mem",
        request_id="r-1",
        memory=memory,
    )

    frames = [
        f
        async for f in run.frames(
            "show me Alda Carter's chart", UserToken(token, "jwt")
        )
    ]

    key = await memory.key_for("s-mem", token)
    assert key is not None
    remembered = json.dumps(memory.store.recall(key))
    assert frames[-1] == {"type": "done"}
    assert "show me Alda Carter's chart" in remembered
    assert "Chart for Alda Carter" in remembered
    for part in [token, *token.split(".")]:
        assert part not in remembered


def _methods(bodies: list[bytes]) -> list[str]:
    methods = []
    for body in bodies:
        if body.strip():
            message = json.loads(body)
            methods.append(str(message.get("method")))
    return methods


def test_each_question_opens_its_own_session_but_tools_are_listed_once(
    runtime: Runtime,
) -> None:
    forget_tools()
    first, second = (f"eyJ0.{secrets.token_urlsafe(24)}.sig{n}" for n in (1, 2))

    for token in (first, second):
        _, frames = invoke(runtime, {"prompt": "list my patients"}, bearer(token))
        assert frames[-1] == {"type": "done"}

    methods = _methods(runtime.mcp.bodies)
    # The session's handshake: server/discover (MCP 2026-07-28) or initialize.
    assert methods.count("server/discover") + methods.count("initialize") == 2
    assert methods.count("tools/list") == 1
    assert methods.count("tools/call") == 2
    # The second question still authenticated its own session with its own token.
    assert runtime.mcp.authorizations.count(f"Bearer {second}") >= 2
    assert runtime.mcp.tool_calls == [("list_my_patients", None)] * 2
