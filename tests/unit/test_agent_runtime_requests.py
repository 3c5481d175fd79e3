"""How the runtime reads an invocation: the prompt, the clinician's token, the mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustloop.agent.invocation import UserToken
from trustloop.agent.mcp_transport import ClinicianBearerAuth
from trustloop.agent.runtime import (
    MAX_PROMPT_CHARS,
    USER_TOKEN_HEADER,
    InvalidRequestError,
    SignInRequiredError,
    create_app,
    read_prompt,
    read_user_token,
)
from trustloop.settings import Settings


def test_bearer_scheme_is_case_insensitive() -> None:
    token = read_user_token({"Authorization": "bearer abc.def-ghi"})

    assert token == UserToken("abc.def-ghi", "jwt")


def test_custom_header_is_the_sigv4_mode_token() -> None:
    headers = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/x",
        USER_TOKEN_HEADER.lower(): "Bearer abc.def",
    }

    assert read_user_token(headers) == UserToken("abc.def", "sigv4")


def test_bearer_authorization_wins_over_the_custom_header() -> None:
    headers = {"Authorization": "Bearer from.jwt", USER_TOKEN_HEADER: "from.custom"}

    assert read_user_token(headers).mode == "jwt"


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer a b"},
        {"Authorization": "Bearer tok\u00e9n"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {USER_TOKEN_HEADER: "x" * 20000},
    ],
)
def test_missing_or_malformed_token_requires_sign_in(
    headers: dict[str, str] | None,
) -> None:
    with pytest.raises(SignInRequiredError, match=r"^sign in required$"):
        read_user_token(headers)


def test_token_never_appears_in_reprs() -> None:
    token = read_user_token({"Authorization": "Bearer s3cr3t.value"})

    assert "s3cr3t" not in repr(token)
    assert "s3cr3t" not in repr(ClinicianBearerAuth(token.value))


def test_prompt_at_the_limit_is_accepted() -> None:
    prompt = "x" * MAX_PROMPT_CHARS

    assert read_prompt({"prompt": prompt, "extra": 1}) == prompt


@pytest.mark.parametrize(
    "payload",
    [None, "list", {"prompt": None}, {"prompt": "x" * (MAX_PROMPT_CHARS + 1)}],
)
def test_bad_payload_is_an_invalid_request(payload: object) -> None:
    with pytest.raises(InvalidRequestError, match=r"^invalid request: "):
        read_prompt(payload)


def test_model_transcript_is_refused_outside_the_local_profile(tmp_path: Path) -> None:
    settings = Settings(
        profile="aws", state_dir=tmp_path, model_transcript=tmp_path / "t.jsonl"
    )

    with pytest.raises(RuntimeError, match="refuses to run with profile 'aws'"):
        create_app(settings)
