"""Bad settings and a bad ``trustloop.toml``: one clear line, never a traceback."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError

from trustloop import cli
from trustloop.cli import main
from trustloop.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["trustloop", *argv])
    # main() configures process-wide logging for the CLI; other tests read logs.
    monkeypatch.setattr(cli, "configure", lambda *args, **kwargs: None)
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not-a-url", "must be an http:// or https:// URL with a host"),
        ("ftp://127.0.0.1:9400", "must be an http:// or https:// URL with a host"),
        ("http://127.0.0.1:99999", "not a URL (Port out of range"),
        ("http://127.0.0.1:port", "not a URL"),
        ("http://admin:hunter2@127.0.0.1:9400", "must not carry a user name"),
        ("http://127.0.0.1", "must name a port"),
        ("http://127.0.0.1:", "the port after ':' is missing"),
    ],
)
def test_a_bad_url_is_named_as_its_variable(
    value: str,
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRUSTLOOP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TRUSTLOOP_IDP_URL", value)

    code = _run(["up"], monkeypatch)

    err = capsys.readouterr().err
    assert code == 1
    assert "invalid setting: TRUSTLOOP_IDP_URL" in err
    assert reason in err
    assert "hunter2" not in err
    assert "Traceback" not in err
    assert not (tmp_path / "state").exists()  # refused before anything started


def test_a_production_url_needs_no_port() -> None:
    aws = Settings(profile="aws", vault_addr="https://vault.example.org")

    assert aws.vault_addr == "https://vault.example.org"
    with pytest.raises(ValidationError, match="TRUSTLOOP_VAULT_ADDR: the local"):
        Settings(profile="local", vault_addr="https://vault.example.org")


def test_a_malformed_trustloop_toml_is_named(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    (tmp_path / "trustloop.toml").write_text('idp_url = "http://127.0.0.1:1\n')
    monkeypatch.chdir(tmp_path)

    code = _run(["audit", "verify"], monkeypatch)

    err = capsys.readouterr().err
    assert code == 1
    assert f"trustloop.toml in {tmp_path}: not valid TOML" in err
    assert "Traceback" not in err


def test_a_rule_across_fields_is_reported_without_an_empty_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRUSTLOOP_PROFILE", "aws")
    monkeypatch.setenv("TRUSTLOOP_STEP_UP_AUTO", "approve")

    code = _run(["audit", "verify"], monkeypatch)

    err = capsys.readouterr().err
    assert code == 1
    assert "invalid setting: step_up_auto is dev-only" in err
    assert "TRUSTLOOP_:" not in err


@pytest.mark.parametrize("value", ["http://127.0.0.1:8000", "http://127.0.0.1:8000/"])
def test_an_mcp_url_without_its_path_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It made `up` wait 45 s for a readiness URL the server never answered."""
    monkeypatch.setenv("TRUSTLOOP_MCP_URL", value)

    code = _run(["up"], monkeypatch)

    err = capsys.readouterr().err
    assert code == 1
    assert "TRUSTLOOP_MCP_URL: must name the MCP endpoint's path too" in err
    assert "Value error" not in err


def test_a_misspelled_setting_is_named_with_the_one_meant(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRUSTLOOP_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("TRUSTLOOP_IDP_ULR", "http://127.0.0.1:19400")
    monkeypatch.setenv("TRUSTLOOP_VAULT_IDP_JWKS_URL", "http://127.0.0.1:1/jwks")

    _run(["audit", "verify"], monkeypatch)

    err = capsys.readouterr().err
    assert "warning: TRUSTLOOP_IDP_ULR is not a trustloop setting" in err
    assert "(did you mean TRUSTLOOP_IDP_URL?)" in err
    assert "TRUSTLOOP_VAULT_IDP_JWKS_URL" not in err  # read by the Vault stand-in
