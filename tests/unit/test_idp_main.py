"""The IdP stand-in's entry point refuses to run outside the local profile."""

from __future__ import annotations

import pytest

from trustloop.devstack.idp.__main__ import main


def test_the_idp_refuses_the_aws_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTLOOP_PROFILE", "aws")
    with pytest.raises(RuntimeError, match="local development stand-in"):
        main()
