"""``trustloop up`` starts every part, serves questions, and Ctrl-C stops them all."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest
from processkit import wait_for_line

from trustloop.devstack.postgres import stop_cluster
from trustloop.devstack.stack import Stack, http_ok

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = pytest.mark.e2e


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustloop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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
        output = wait_for_line(up, "ready", timeout=90)
        for part in ("postgres", "spire", "idp", "vault", "mcp", "runtime"):
            assert f"✓ {part}" in output
        assert "loaded" in output  # first start loads the bundled samples
        pg_port = int(output.split("✓ postgres 127.0.0.1:")[1].split("/")[0])

        asked = _cli(env, "ask", "--as", "bokafor", "list my patients")
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


def _start_up(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    up = subprocess.Popen(
        [sys.executable, "-m", "trustloop.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return up, wait_for_line(up, "ready", timeout=90)


def _http_parts_down(stack: Stack, timeout: float = 15.0) -> bool:
    s = stack.settings
    urls = (
        f"{s.idp_url}/oauth2/jwks",
        f"{s.vault_addr}/v1/sys/health",
        f"{s.runtime_url}/ping",
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(http_ok(url) for url in urls):
            return True
        time.sleep(0.2)
    return False


def test_a_second_up_is_refused_and_the_first_keeps_serving(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    stack = Stack.on_free_ports(pg_state_dir_factory("up-twice"))
    env = stack.child_env("cli")
    first, _ = _start_up(env)
    try:
        same_state = _cli(env, "up")
        assert same_state.returncode == 1
        assert "another trustloop stack is running" in same_state.stderr

        other_state = dict(
            env, TRUSTLOOP_STATE_DIR=str(pg_state_dir_factory("up-other"))
        )
        same_ports = _cli(other_state, "up")
        assert same_ports.returncode == 1
        assert "already in use" in same_ports.stderr
        for variable in (
            "TRUSTLOOP_IDP_URL",
            "TRUSTLOOP_VAULT_ADDR",
            "TRUSTLOOP_APP_URL",
        ):
            assert variable in same_ports.stderr  # every busy port at once, by name
        assert "Traceback" not in same_ports.stderr + same_ports.stdout

        asked = _cli(env, "ask", "--as", "achen", "list my patients")
        assert asked.returncode == 0, asked.stderr
        assert "patients on your care team" in asked.stdout

        first.send_signal(signal.SIGHUP)  # the terminal closed
        assert first.wait(timeout=30) == 0
        assert _http_parts_down(stack)
    finally:
        if first.poll() is None:
            first.kill()


def test_a_killed_supervisor_takes_its_parts_with_it(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    stack = Stack.on_free_ports(pg_state_dir_factory("up-killed"))
    up, _ = _start_up(stack.child_env("cli"))
    try:
        up.kill()  # SIGKILL: no handler runs, no orderly stop
        up.wait(timeout=10)
        assert _http_parts_down(stack), "parts outlived their supervisor"
    finally:
        stop_cluster(stack.settings.state_dir)  # pg_ctl's server is a daemon of its own


def _pg_port(output: str) -> int:
    return int(output.split("✓ postgres 127.0.0.1:")[1].split("/")[0])


def test_ctrl_c_stops_everything_even_when_the_output_pipe_died(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    """`trustloop up | tee log`: Ctrl-C kills tee too; the stack must still stop."""
    stack = Stack.on_free_ports(pg_state_dir_factory("up-pipe"))
    up, output = _start_up(stack.child_env("cli"))
    try:
        assert up.stdout is not None
        up.stdout.close()  # the reader is gone: the next print hits a broken pipe
        up.send_signal(signal.SIGINT)
        up.wait(timeout=30)
        assert _http_parts_down(stack)
        assert not _port_open(_pg_port(output)), "PostgreSQL outlived a dead pipe"
    finally:
        if up.poll() is None:
            up.kill()
        stop_cluster(stack.settings.state_dir)


def test_down_stops_the_stack_of_the_state_folder(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    stack = Stack.on_free_ports(pg_state_dir_factory("up-down"))
    env = stack.child_env("cli")
    up, output = _start_up(env)
    try:
        down = _cli(env, "down")
        assert down.returncode == 0, down.stderr
        assert up.wait(timeout=30) == 0
        assert _http_parts_down(stack)
        assert not _port_open(_pg_port(output))
    finally:
        if up.poll() is None:
            up.kill()
        stop_cluster(stack.settings.state_dir)


def test_up_hands_the_idp_policy_to_the_idp_which_refuses_a_broken_one(
    pg_state_dir_factory: Callable[[str], Path], tmp_path: Path
) -> None:
    """``TRUSTLOOP_IDP_POLICY`` reaches the IdP: a broken policy stops ``up``.

    It once did not (the stack passed on a fixed list of settings), and the
    stack ran on the shipped policy without a word.
    """
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules: [{bad: 1}]\n")
    stack = Stack.on_free_ports(pg_state_dir_factory("up-policy"), idp_policy=policy)

    up = _cli(stack.child_env("cli"), "up")

    try:
        assert up.returncode == 1
        assert "idp exited early" in up.stderr
        assert f"{policy}: invalid policy" in up.stderr
        assert "Traceback" not in up.stderr + up.stdout
        assert not http_ok(f"{stack.settings.spire_bundle_url}/keys")
        assert "✓ postgres 127.0.0.1:" in up.stdout
        assert not _port_open(_pg_port(up.stdout)), "PostgreSQL outlived a failed up"
    finally:
        stop_cluster(stack.settings.state_dir)
