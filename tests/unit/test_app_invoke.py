"""Both invoke modes put the token where the runtime reads it, and only there."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest
from botocore.credentials import Credentials  # type: ignore[import-untyped]

from trustloop.agent.runtime import read_user_token
from trustloop.app.invoke import (
    RuntimeInvoker,
    SigV4Signer,
    invocations_url,
)
from trustloop.app.runtime_client import SESSION_HEADER, USER_TOKEN_HEADER

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjbGluLWFjaGVuIn0.c2lnbmF0dXJl"
BODY = b'{"prompt": "list my patients"}'
# The documented example identity of AWS's SigV4 test suite: not a credential.
EXAMPLE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def test_jwt_mode_sends_the_token_as_the_bearer() -> None:
    invoker = RuntimeInvoker("http://127.0.0.1:8080", httpx.AsyncClient())

    headers = invoker.request_headers(BODY, access_token=TOKEN, session_id="s" * 36)

    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers[SESSION_HEADER] == "s" * 36
    assert USER_TOKEN_HEADER not in headers
    token = read_user_token(headers)
    assert (token.value, token.mode) == (TOKEN, "jwt")


def test_sigv4_mode_signs_as_the_app_and_carries_the_token_in_the_custom_header() -> (
    None
):
    signer = SigV4Signer(EXAMPLE, "us-east-1")
    invoker = RuntimeInvoker(
        "https://bedrock-agentcore.us-east-1.amazonaws.com/runtimes/rt/",
        httpx.AsyncClient(),
        mode="sigv4",
        signer=signer,
    )

    headers = invoker.request_headers(BODY, access_token=TOKEN, session_id="s" * 36)

    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-east-1/bedrock-agentcore/aws4_request" in authorization
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert USER_TOKEN_HEADER.lower() in signed  # the token cannot be swapped in transit
    assert SESSION_HEADER.lower() in signed
    assert TOKEN not in authorization
    assert headers[USER_TOKEN_HEADER] == TOKEN
    token = read_user_token(headers)
    assert (token.value, token.mode) == (TOKEN, "sigv4")


def test_the_signature_covers_the_body() -> None:
    signer = SigV4Signer(EXAMPLE, "us-east-1")
    url = "https://bedrock-agentcore.us-east-1.amazonaws.com/invocations"
    headers = {"Content-Type": "application/json", "X-Amz-Date": "20261203T000000Z"}

    first = signer.sign(url, BODY, dict(headers))["Authorization"]
    second = signer.sign(url, b'{"prompt": "other"}', dict(headers))["Authorization"]

    assert first.split("Signature=")[1] != second.split("Signature=")[1]


def test_invocations_url_keeps_agentcores_qualifier_query() -> None:
    assert invocations_url("http://127.0.0.1:8080") == (
        "http://127.0.0.1:8080/invocations"
    )
    assert invocations_url("https://h/runtimes/a%3Ab/?qualifier=DEFAULT") == (
        "https://h/runtimes/a%3Ab/invocations?qualifier=DEFAULT"
    )


def test_each_question_gets_its_own_client_sharing_one_verifying_tls_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """runtime_client.invoke (CLI, benchmarks): a new client per question, one
    CA store load per process, and certificates still checked."""
    from trustloop.app import runtime_client

    made: list[httpx.Client] = []
    contexts: list[Any] = []
    real_client = httpx.Client

    def client(**kwargs: Any) -> httpx.Client:
        contexts.append(kwargs.get("verify"))
        made.append(real_client(**kwargs, transport=_answer_401()))
        return made[-1]

    monkeypatch.setattr(httpx, "Client", client)
    for _ in range(2):
        with pytest.raises(runtime_client.InvocationError, match="HTTP 401"):
            list(
                runtime_client.invoke(
                    "https://runtime.example", "hi", access_token="t", session_id="s"
                )
            )

    assert made[0] is not made[1]
    assert contexts[0] is contexts[1] is runtime_client.tls_context()
    assert contexts[0].verify_mode is ssl.CERT_REQUIRED
    assert contexts[0].check_hostname


def _answer_401() -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(401))
