"""``trustloop up`` starts every part, serves questions, and Ctrl-C stops them all."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from trustloop.devstack.stack import Stack, http_ok

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = pytest.mark.e2e


def _wait_for_line(process: subprocess.Popen[str], needle: str, timeout: float) -> str:
    assert process.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen += line
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never printed; output so far:\n{seen}")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_up_serves_questions_and_ctrl_c_stops_every_part(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    stack = Stack.on_free_ports(pg_state_dir_factory("up"))
    env = stack.child_env("cli")
    up = subprocess.Popen(
        [sys.executable, "-m", "trustloop.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = _wait_for_line(up, "ready", timeout=90)
        for part in ("postgres", "spire", "idp", "vault", "mcp", "runtime"):
            assert f"✓ {part}" in output
        assert "loaded" in output  # first start loads the bundled samples
        pg_port = int(output.split("✓ postgres 127.0.0.1:")[1].split("/")[0])

        asked = subprocess.run(
            [
                sys.executable,
                "-m",
                "trustloop.cli",
                "ask",
                "--as",
                "bokafor",
                "list my patients",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert asked.returncode == 0, asked.stderr
        assert "patients on your care team" in asked.stdout

        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
    finally:
        if up.poll() is None:
            up.kill()
            stack.stop()

    s = stack.settings
    for url in (
        f"{s.idp_url}/oauth2/jwks",
        f"{s.vault_addr}/v1/sys/health",
        f"{s.runtime_url}/ping",
    ):
        assert not http_ok(url), f"{url} still answers after Ctrl-C"
    assert not _port_open(pg_port), "PostgreSQL still listens after Ctrl-C"
    assert not list(s.spiffe_socket_dir.glob("*.sock"))
