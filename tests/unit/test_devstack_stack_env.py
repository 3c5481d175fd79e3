"""Every setting the stack was given reaches the parts it starts."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from trustloop.devstack.stack import Stack
from trustloop.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def _settings_in(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a part builds from ``env`` (and nothing else)."""
    for name in [k for k in os.environ if k.startswith("TRUSTLOOP_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("TRUSTLOOP_"):
            monkeypatch.setenv(name, value)
    return Settings()


def test_a_part_reads_exactly_the_settings_the_stack_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not one field falls back to its default in the child (the IdP policy did)."""
    monkeypatch.chdir(tmp_path)  # no trustloop.toml here
    given = Settings(
        state_dir=tmp_path / "state",
        trust_domain="clinic.example",
        idp_url="http://127.0.0.1:19400",
        spire_bundle_url="http://127.0.0.1:19401",
        vault_addr="http://127.0.0.1:18200",
        vault_audience="vault-elsewhere",
        vault_auth_role="mcp-elsewhere",
        vault_creds_role="clinical-elsewhere",
        mcp_url="http://127.0.0.1:18000/mcp",
        runtime_url="http://127.0.0.1:18080",
        app_url="http://127.0.0.1:13000",
        app_invoke_mode="sigv4",
        idp_policy=tmp_path / "strict-policy.yaml",
        pg_port=15432,
        pg_dbname="clinic",
        step_up_timeout_s=7.5,
        step_up_auto="deny",
        model_transcript=tmp_path / "transcript.jsonl",
    )
    defaults = Settings()
    changed = {
        name
        for name in Settings.model_fields
        if getattr(given, name) != getattr(defaults, name)
    }
    # The comparison below means something only if every field was changed.
    assert changed == set(Settings.model_fields) - {"profile", "pg_host", "model"}

    env = Stack(given).child_env("idp")

    assert _settings_in(env, monkeypatch) == given


def test_relative_paths_are_made_absolute_and_unset_ones_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = Stack(Settings(idp_policy="policy.yaml")).child_env("idp")  # type: ignore[arg-type]

    assert env["TRUSTLOOP_IDP_POLICY"] == str(tmp_path.resolve() / "policy.yaml")
    assert env["TRUSTLOOP_STATE_DIR"] == str(tmp_path.resolve() / ".trustloop")
    assert "TRUSTLOOP_MODEL_TRANSCRIPT" not in env


def test_other_trustloop_variables_and_the_callers_socket_stay_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUSTLOOP_NOT_A_SETTING", "x")
    monkeypatch.setenv("SPIFFE_ENDPOINT_SOCKET", "unix:///tmp/someone-elses.sock")
    stack = Stack(Settings(state_dir=tmp_path))

    cli = stack.child_env("cli")
    mcp = stack.child_env("mcp")

    assert "TRUSTLOOP_NOT_A_SETTING" not in cli
    assert "SPIFFE_ENDPOINT_SOCKET" not in cli
    assert mcp["SPIFFE_ENDPOINT_SOCKET"].startswith(f"unix://{tmp_path.resolve()}/")
