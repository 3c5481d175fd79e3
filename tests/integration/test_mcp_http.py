"""The MCP server over real HTTP on loopback, with a stub IdP for introspection.

The stub speaks just enough RFC 7662 and RFC 8693 (a refusal) for the production
``IdpClient`` and the server's verifier; the lead's end-to-end test runs the real
stand-ins.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import httpx2
import pytest
from loopback import serve_in_thread
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from trustloop.devstack.net import free_port
from trustloop.identity.oauth import IdpClient
from trustloop.identity.spiffe import JwtSvidToken
from trustloop.identity.types import PgConnector
from trustloop.identity.vault import VaultLeaseClient
from trustloop.settings import Settings
from trustloop.tools.server import wire_app

pytestmark = pytest.mark.integration

GOOD = "good-token-SECRET"
OTHER_AUDIENCE = "token-for-another-resource"
OUTAGE = "token-during-outage"
DENIAL = "Patient/p-1 is not on your care team"


@dataclass
class StubIdp:
    """Discovery, introspection and a token endpoint that always refuses."""

    issuer: str
    resource: str
    assertions: list[str] = field(default_factory=list)
    subject_tokens: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/oauth2/introspect", self.introspect, methods=["POST"]),
                Route("/oauth2/token", self.token, methods=["POST"]),
            ]
        )

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "introspection_endpoint": f"{self.issuer}/oauth2/introspect",
                "token_endpoint": f"{self.issuer}/oauth2/token",
            }
        )

    async def introspect(self, request: Request) -> Response:
        form = await request.form()
        self.assertions.append(str(form["client_assertion"]))
        token = form["token"]
        if token == OUTAGE:
            return PlainTextResponse("upstream down", status_code=503)
        if token not in (GOOD, OTHER_AUDIENCE):
            return JSONResponse({"active": False})
        aud = self.resource if token == GOOD else "http://127.0.0.1:1/mcp"
        return JSONResponse(
            {"active": True, "sub": "dr-ada", "aud": [aud], "client_id": "cli",
             "scope": "openid", "exp": int(time.time()) + 900, "jti": "user-jti"}
        )  # fmt: skip

    async def token(self, request: Request) -> Response:
        form = await request.form()
        self.subject_tokens.append(str(form["subject_token"]))
        body = {"error": "access_denied", "error_description": DENIAL}
        return JSONResponse(body, status_code=403)


class StaticSvids:
    async def afetch_jwt_svid(self, audience: str) -> JwtSvidToken:
        spiffe_id = "spiffe://trustloop.local/mcp-server"
        return JwtSvidToken(spiffe_id, int(time.time()) + 300, f"svid-for-{audience}")

    async def afetch_fresh_jwt_svid(self, audience: str) -> JwtSvidToken:
        return await self.afetch_jwt_svid(audience)


@dataclass
class Running:
    url: str
    port: int
    idp: StubIdp
    audit_path: Path


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    idp_port, mcp_port = free_port(), free_port()
    settings = Settings(
        idp_url=f"http://127.0.0.1:{idp_port}",
        mcp_url=f"http://127.0.0.1:{mcp_port}/mcp",
        state_dir=tmp_path,
    )
    stub = StubIdp(settings.idp_issuer, settings.mcp_resource)
    audit_path = settings.audit_dir / "mcp.jsonl"

    with (
        serve_in_thread(stub.app(), idp_port),
        serve_in_thread(mcp_app(settings), mcp_port),
    ):
        yield Running(settings.mcp_url, mcp_port, stub, audit_path)


def mcp_app(settings: Settings) -> Starlette:
    """The MCP server as built, with a stub IdP behind it and no Vault or database."""
    return wire_app(
        settings,
        idp=IdpClient(settings.idp_issuer, httpx.AsyncClient(trust_env=False)),
        svids=StaticSvids(),
        vault=VaultLeaseClient("http://127.0.0.1:1", auth_role="x", creds_role="y"),
        connect=PgConnector("127.0.0.1", 1, "none"),
    )


def expected_challenge(port: int) -> str:
    metadata = f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp"
    return (
        'Bearer error="invalid_token", error_description="Authentication required", '
        f'resource_metadata="{metadata}"'
    )


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer garbage", f"Bearer {OTHER_AUDIENCE}", "Basic Zm9vOmJhcg=="],
    ids=["none", "garbage", "other-audience", "not-bearer"],
)
def test_without_a_token_for_us_the_answer_is_401_with_a_challenge(
    running: Running, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    response = httpx.post(running.url, json={}, headers=headers, trust_env=False)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == expected_challenge(running.port)
    assert response.json()["error"] == "invalid_token"


def test_verifier_authenticates_to_the_idp_with_an_svid(running: Running) -> None:
    httpx.post(
        running.url, json={}, headers={"Authorization": "Bearer x"}, trust_env=False
    )

    assert running.idp.assertions == [f"svid-for-{running.idp.issuer}"]


def test_idp_outage_is_503_not_a_sign_in_prompt(running: Running) -> None:
    headers = {"Authorization": f"Bearer {OUTAGE}"}

    response = httpx.post(running.url, json={}, headers=headers, trust_env=False)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"] == "temporarily_unavailable"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_protected_resource_metadata_answers_on_loopback_names(
    running: Running, host: str
) -> None:
    url = f"http://{host}:{running.port}/.well-known/oauth-protected-resource/mcp"

    response = httpx.get(url, trust_env=False)

    assert response.status_code == 200
    assert response.json()["resource"] == running.url
    assert response.json()["authorization_servers"] == [running.idp.issuer]


def test_other_host_headers_are_refused_as_dns_rebinding(running: Running) -> None:
    headers = {
        "Authorization": f"Bearer {GOOD}",
        "Host": f"evil.example:{running.port}",
    }

    response = httpx.post(running.url, json={}, headers=headers, trust_env=False)

    assert response.status_code == 421


async def test_sdk_client_with_an_accepted_token_lists_and_calls_tools(
    running: Running,
) -> None:
    headers = {"Authorization": f"Bearer {GOOD}"}

    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(running.url, http_client=http)) as client,
    ):
        tools = {tool.name for tool in (await client.list_tools()).tools}
        denied = await client.call_tool("read_patient_record", {"patient_id": "p-1"})
        invalid = await client.call_tool("read_patient_record", {"patient_id": "a b"})

    assert tools == {
        "list_my_patients",
        "find_patient",
        "read_patient_record",
        "get_lab_results",
        "write_clinical_note",
        "update_medication",
    }
    assert denied.is_error
    assert isinstance(denied.content[0], TextContent)
    assert denied.content[0].text == f"access_denied: {DENIAL}"
    # The request's own bearer token reached the exchange as subject_token.
    assert running.idp.subject_tokens == [GOOD]
    assert isinstance(invalid.content[0], TextContent)
    assert invalid.content[0].text.startswith("invalid_request: ")
    assert GOOD not in running.audit_path.read_text()
