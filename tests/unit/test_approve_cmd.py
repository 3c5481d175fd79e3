"""``trustloop approve``: answers through the IdP, refuses outside the local profile."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from trustloop.cli import app, approve_cmd
from trustloop.settings import ProfileError, Settings

RUNNER = CliRunner()


def _fake_answer(answer: dict[str, Any] | None, calls: list[bool]) -> Any:
    def answer_push(
        settings: Settings, username: str, *, approve: bool
    ) -> dict[str, Any] | None:
        calls.append(approve)
        return answer

    return answer_push


def test_deny_answers_the_push_with_a_denial(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    answer = {"id": "t", "state": "VERIFY_FAILED", "message": "Read the chart of p?"}
    monkeypatch.setattr(approve_cmd, "answer_push", _fake_answer(answer, calls))

    result = RUNNER.invoke(app, ["approve", "--as", "achen", "--deny"])

    assert result.exit_code == 0
    assert calls == [False]
    assert "denied: Read the chart of p?" in result.output


def test_no_pending_push_is_a_clear_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(approve_cmd, "answer_push", _fake_answer(None, []))

    result = RUNNER.invoke(app, ["approve", "--as", "achen"])

    assert result.exit_code == 1


def test_an_unknown_clinician_is_refused_before_any_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(approve_cmd, "answer_push", _fake_answer(None, calls))

    result = RUNNER.invoke(app, ["approve", "--as", "nobody"])

    assert result.exit_code == 1
    assert calls == []


def test_approve_refuses_outside_the_local_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRUSTLOOP_PROFILE", "aws")
    monkeypatch.setattr(approve_cmd, "answer_push", _fake_answer(None, []))

    result = RUNNER.invoke(app, ["approve", "--as", "achen"])

    assert isinstance(result.exception, ProfileError)
