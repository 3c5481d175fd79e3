"""The IdP stand-in's entry point refuses to run outside the local profile."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from trustloop.devstack.idp import __main__ as idp_main
from trustloop.devstack.idp.__main__ import main


def test_the_idp_refuses_the_aws_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTLOOP_PROFILE", "aws")
    with pytest.raises(RuntimeError, match="local development stand-in"):
        main()


def test_the_idp_refuses_to_start_with_an_invalid_policy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Fail closed: the error names the file and the problem."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nrules: []\n")
    monkeypatch.setenv("TRUSTLOOP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TRUSTLOOP_IDP_POLICY", str(policy))
    # Leave the process's logging as the other tests expect it.
    monkeypatch.setattr(idp_main, "configure", lambda service: structlog.get_logger())

    with pytest.raises(SystemExit) as stopped:
        main()

    assert str(policy) in str(stopped.value.code)
    assert "rules" in str(stopped.value.code)
