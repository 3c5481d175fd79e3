"""``trustloop up`` starts the web app and says how the demo clinicians sign in."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pyotp
import pytest
from processkit import wait_for_line

from trustloop.devstack.idp.users import demo_totp
from trustloop.devstack.stack import Stack, http_ok

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = pytest.mark.e2e


def test_up_serves_the_app_and_prints_its_url_and_the_demo_sign_in(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    stack = Stack.on_free_ports(pg_state_dir_factory("upapp"))
    s = stack.settings
    up = subprocess.Popen(
        [sys.executable, "-m", "trustloop.cli", "up"],
        env={**stack.child_env("cli"), "COLUMNS": "400"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = wait_for_line(up, "ready", timeout=90)

        assert f"✓ app      {s.app_url}" in output
        assert f"open {s.app_url} and sign in" in output
        assert str(s.state_dir / "idp" / "demo-users.json") in output
        assert http_ok(f"{s.app_url}/healthz")
        uris = [w for w in output.split() if w.startswith("otpauth://totp/")]
        assert len(uris) == 3
        for username, uri in zip(("achen", "bokafor", "cwhite"), uris, strict=True):
            totp = pyotp.parse_uri(uri)
            assert isinstance(totp, pyotp.TOTP)
            assert totp.secret == demo_totp(s.state_dir, username)
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
    finally:
        if up.poll() is None:
            up.kill()
            stack.stop()
    assert not http_ok(f"{s.app_url}/healthz"), "the app still answers after Ctrl-C"
