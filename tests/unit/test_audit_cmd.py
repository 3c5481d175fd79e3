"""``trustloop audit`` names a missing audit folder instead of reporting no records."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from trustloop.audit.chain import AuditLog
from trustloop.cli.audit_cmd import app

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    "argv",
    [
        ["trace", "00000000-0000-4000-8000-000000000000"],
        ["tail", "-n", "5"],
        ["verify"],
    ],
)
def test_a_state_folder_without_audit_is_named(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "no-stack-here"
    monkeypatch.setenv("TRUSTLOOP_STATE_DIR", str(state))

    result = CliRunner().invoke(app, argv)

    assert result.exit_code == 1
    assert f"no audit folder at {state}/audit/" in result.output
    assert "TRUSTLOOP_STATE_DIR" in result.output
    assert not state.exists()  # reading made nothing


def test_an_empty_audit_folder_is_not_a_missing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "audit").mkdir()
    monkeypatch.setenv("TRUSTLOOP_STATE_DIR", str(tmp_path))

    result = CliRunner().invoke(app, ["trace", "00000000-0000-4000-8000-000000000000"])

    assert result.exit_code == 1
    assert "no audit record mentions" in result.output


JTI = "5b1e8c0e-8d7b-4b7e-9f3a-2f7d1c9e4a10"
PLANTED = "verify-rar/creds/\x1b[2J\x1b[1;1HFORGED [bold]row[/bold]\u202e"


@pytest.mark.parametrize("argv", [["trace", JTI], ["tail", "-n", "5"]])
def test_escape_sequences_and_markup_in_records_are_shown_not_obeyed(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value a caller chose (a Vault path) reaches the terminal inert."""
    log = AuditLog(tmp_path / "audit" / "vault.jsonl", "vault")
    log.append("response", type="response", jti=JTI, request={"path": PLANTED})
    log.append("response", type="response", jti=PLANTED)  # what tail prints
    monkeypatch.setenv("TRUSTLOOP_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "400")

    result = CliRunner().invoke(app, argv)

    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert "\u202e" not in result.output
    assert "\\x1b[2J" in result.output
    assert "\\u202e" in result.output
    if argv[0] == "trace":
        assert "[bold]row[/bold]" in result.output  # printed, not applied
