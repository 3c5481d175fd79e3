"""The production IdP client's error handling and secrecy (httpx MockTransport)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from trustloop.identity.oauth import (
    IdpClient,
    IdpUnavailableError,
    IssuedToken,
    OAuthError,
)
from trustloop.identity.rar import patient_read

ISSUER = "https://tenant.verify.example/oauth2"
DISCOVERY = {
    "issuer": ISSUER,
    "token_endpoint": f"{ISSUER}/token",
    "introspection_endpoint": f"{ISSUER}/introspect",
}
Handler = Callable[[httpx.Request], httpx.Response]


def _jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256'})}.{part(claims)}.c2ln"


def _client(on_post: Handler, discovery: dict[str, Any] = DISCOVERY) -> IdpClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json=discovery)
        return on_post(request)

    return IdpClient(ISSUER, httpx.AsyncClient(transport=httpx.MockTransport(handle)))


async def _exchange(client: IdpClient) -> IssuedToken:
    return await client.exchange(
        subject_token="user-token",
        actor_token="svid",
        client_assertion="svid",
        audience="trustloop-vault",
        detail=patient_read("p1"),
    )


def test_an_oauth_error_renders_as_code_and_description() -> None:
    error = OAuthError("access_denied", "Patient/p1: not on your care team", 403)
    assert str(error) == "access_denied: Patient/p1: not on your care team"


async def test_endpoints_come_from_discovery() -> None:
    seen: list[str] = []

    def on_post(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"active": False})

    found = await _client(on_post).introspect("t", client_assertion="svid")

    assert not found.active
    assert seen == [f"{ISSUER}/introspect"]


async def test_a_discovery_document_naming_another_issuer_is_refused() -> None:
    client = _client(
        lambda r: httpx.Response(500), {**DISCOVERY, "issuer": "https://evil"}
    )
    with pytest.raises(IdpUnavailableError):
        await client.introspect("t", client_assertion="svid")


async def test_an_error_answer_becomes_oauth_error() -> None:
    body = {"error": "access_denied", "error_description": "Patient/p1: nope"}
    client = _client(lambda r: httpx.Response(403, json=body))

    with pytest.raises(OAuthError) as raised:
        await _exchange(client)

    assert (raised.value.error, raised.value.status) == ("access_denied", 403)
    assert raised.value.description == "Patient/p1: nope"


async def test_network_failures_become_idp_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(IdpUnavailableError) as raised:
        await _exchange(_client(refuse))
    assert "user-token" not in str(raised.value)


async def test_a_5xx_without_an_oauth_body_is_idp_unavailable() -> None:
    client = _client(lambda r: httpx.Response(502, text="bad gateway"))
    with pytest.raises(IdpUnavailableError):
        await _exchange(client)


async def test_the_exchange_sends_the_rfc8693_form_with_one_detail() -> None:
    forms: list[dict[str, str]] = []

    def on_post(request: httpx.Request) -> httpx.Response:
        forms.append(dict(httpx.QueryParams(request.content.decode())))
        token = _jwt({"jti": "j-1", "exp": 100})
        return httpx.Response(
            200,
            json={
                "access_token": token,
                "issued_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_type": "N_A",
                "expires_in": 60,
            },
        )

    issued = await _exchange(_client(on_post))

    form = forms[0]
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert form["subject_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert form["actor_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
    assert form["client_assertion_type"] == (
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
    assert json.loads(form["authorization_details"]) == [
        {"type": "patient_record", "actions": ["read"], "identifier": "Patient/p1"}
    ]
    assert (issued.jti, issued.exp, issued.expires_in) == ("j-1", 100, 60)


async def test_an_answer_granting_something_else_is_refused() -> None:
    widened = [
        {"type": "patient_record", "actions": ["read"], "identifier": "Patient/p2"}
    ]
    answer = {
        "access_token": _jwt({"jti": "j"}),
        "issued_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_type": "N_A",
        "expires_in": 60,
        "authorization_details": widened,
    }
    with pytest.raises(OAuthError) as raised:
        await _exchange(_client(lambda r: httpx.Response(200, json=answer)))
    assert raised.value.error == "invalid_authorization_details"


def test_issued_tokens_never_show_the_token() -> None:
    issued = IssuedToken(
        access_token="secret-token", expires_in=60, jti="j", exp=1, token_type="N_A"
    )
    for shown in (repr(issued), str(issued), f"{issued}", repr([issued])):
        assert "secret-token" not in shown
        assert "j" in shown


def test_a_plain_http_issuer_is_refused_unless_loopback() -> None:
    http = httpx.AsyncClient()
    with pytest.raises(ValueError, match="HTTPS"):
        IdpClient("http://idp.example", http)
    IdpClient("http://127.0.0.1:9400", http)
    IdpClient("http://localhost:9400", http)
