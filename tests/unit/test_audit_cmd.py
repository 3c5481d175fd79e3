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


_HOSTILE_LINES = {
    "null": b"null\n",
    "array": b"[1]\n",
    "string": b'"x"\n',
    "past-the-parser": b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "900-deep": b'{"a":' * 900 + b"1" + b"}" * 900 + b"\n",
}


def _a_trail(state: Path) -> None:
    for system in ("idp", "mcp", "vault"):
        log = AuditLog(state / "audit" / f"{system}.jsonl", system)
        for n in range(3):
            log.append("tool_call", jti=JTI if n == 1 else f"{system}-jti-{n}")


@pytest.mark.parametrize("line", _HOSTILE_LINES, ids=list(_HOSTILE_LINES))
def test_a_line_that_is_no_record_is_reported_and_the_rest_still_checked(
    line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad idp.jsonl line stopped `verify` before a forged vault.jsonl."""
    _a_trail(tmp_path)
    with (tmp_path / "audit" / "idp.jsonl").open("ab") as fh:
        fh.write(_HOSTILE_LINES[line])
    vault = tmp_path / "audit" / "vault.jsonl"
    vault.write_text(vault.read_text().replace('"tool_call"', '"forged"', 1))
    monkeypatch.setenv("TRUSTLOOP_STATE_DIR", str(tmp_path))

    checked = CliRunner().invoke(app, ["verify"])
    traced = CliRunner().invoke(app, ["trace", JTI])
    tailed = CliRunner().invoke(app, ["tail", "-n", "20"])

    assert checked.exit_code == 1
    assert "BROKEN  idp.jsonl line 4" in checked.output
    assert "BROKEN  vault.jsonl line 2" in checked.output
    assert checked.exception is None or isinstance(checked.exception, SystemExit)
    assert traced.exit_code == 0, traced.exception
    assert "mcp" in traced.output
    assert tailed.exit_code == 0, tailed.exception
    assert tailed.output.count("tool_call") == 8  # 9 records, one renamed
    assert "forged" in tailed.output


@pytest.mark.parametrize(
    "stamp", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00+05:00"]
)
@pytest.mark.parametrize("argv", [["trace", JTI], ["tail", "-n", "5"]])
def test_a_time_past_the_calendar_is_shown_not_a_crash(
    stamp: str, argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    AuditLog(tmp_path / "audit" / "mcp.jsonl", "mcp").append(
        "tool_call", jti=JTI, time=stamp
    )
    monkeypatch.setenv("TRUSTLOOP_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "400")

    result = CliRunner().invoke(app, argv)

    assert result.exit_code == 0, result.exception
    assert stamp in result.output


def test_trace_warns_about_a_file_that_fails_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edited outcome was shown as fact, with no word that verify calls it broken."""
    _a_trail(tmp_path)
    mcp = tmp_path / "audit" / "mcp.jsonl"
    mcp.write_text(mcp.read_text().replace(f'"jti":"{JTI}"', f'"jti":"{JTI}","x":1'))
    monkeypatch.setenv("TRUSTLOOP_STATE_DIR", str(tmp_path))

    result = CliRunner().invoke(app, ["trace", JTI])

    assert result.exit_code == 0
    assert "warning: mcp.jsonl fails verification (line 3:" in result.output
    assert "idp.jsonl fails" not in result.output
    assert "vault.jsonl fails" not in result.output
