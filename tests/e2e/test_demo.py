"""``trustloop demo`` from the outside: it signs in with a second factor, every OBO
``jti`` it prints traces through the IdP, Vault, the MCP server and PostgreSQL, in
time order, and ``trustloop audit verify`` finds every chain intact (issue 6)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from trustloop.audit.trace import trace
from trustloop.devstack.postgres import destroy_cluster, load_info

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = pytest.mark.e2e

JTI = re.compile(r"OBO jti ([0-9a-f-]{36})")
CHAIN = {"idp", "vault", "mcp", "postgres"}


def _cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTLOOP_")}
    env["TRUSTLOOP_STATE_DIR"] = str(state)
    return subprocess.run(
        [sys.executable, "-m", "trustloop.cli", *args],
        env=env,
        cwd=state,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_jti_of_the_demo_traces_through_the_whole_chain(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    state = pg_state_dir_factory("demo-run")
    demo_state = state / "demo"
    try:
        ran = _cli(state, "demo")
        jtis = JTI.findall(ran.stdout)
        timelines = {
            jti: trace(jti, demo_state / "audit", load_info(demo_state).log_dir())
            for jti in jtis
        }
        verified = _cli(demo_state, "audit", "verify")
    finally:
        destroy_cluster(demo_state)

    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "Traceback" not in ran.stdout + ran.stderr
    assert "password + TOTP code" in ran.stdout
    assert "the clinician declined the step-up" in ran.stdout
    assert len(jtis) >= 10, ran.stdout
    for jti, events in timelines.items():
        systems = {e.system for e in events}
        assert systems >= CHAIN, (jti, sorted(systems))
        order = [e.system for e in events]
        # Exchanged at the IdP first; Vault's response record follows the role's
        # creation in PostgreSQL; the MCP server's line comes when the call ends.
        assert order[0] == "idp", (jti, order)
        assert order.index("postgres") < order.index("vault"), (jti, order)
        assert order.index("vault") < order.index("mcp"), (jti, order)
    assert verified.returncode == 0, verified.stdout
    assert "BROKEN" not in verified.stdout
