"""``python -m trustloop.devstack.spire`` as the supervisor starts it."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from typing import IO, TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

READY_TIMEOUT_S = 20.0


def _start(state_dir: Path, **env: str) -> subprocess.Popen[str]:
    environ = {
        **os.environ,
        "TRUSTLOOP_STATE_DIR": str(state_dir),
        "TRUSTLOOP_SPIRE_BUNDLE_URL": "http://127.0.0.1:0",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "trustloop.devstack.spire"],
        env=environ,
        stderr=subprocess.PIPE,
        text=True,
    )


def _events(stream: IO[str]) -> queue.Queue[dict[str, Any]]:
    """JSON log events from ``stream``, read on a thread (non-JSON lines fail)."""
    events: queue.Queue[dict[str, Any]] = queue.Queue()

    def read() -> None:
        for line in stream:
            events.put(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    return events


def test_entry_point_serves_until_sigterm_and_removes_its_sockets(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    state_dir = tmp_path_factory.mktemp("main")
    process = _start(state_dir)
    assert process.stderr is not None
    events = _events(process.stderr)

    try:
        ready = events.get(timeout=READY_TIMEOUT_S)
        keys = httpx.get(f"{ready['bundle_url']}/keys")
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=20)

    assert ready["event"] == "workload_api_ready"
    assert ready["service"] == "spire"
    assert set(ready["sockets"]) == {"mcp-server", "agent-runtime", "auditor"}
    assert keys.status_code == 200
    assert returncode == 0
    assert events.get(timeout=5)["event"] == "workload_api_stopped"
    assert list((state_dir / "spire" / "sockets").iterdir()) == []


def test_entry_point_refuses_a_non_local_profile(tmp_path: Path) -> None:
    process = _start(tmp_path, TRUSTLOOP_PROFILE="aws")
    _, stderr = process.communicate(timeout=20)

    assert process.returncode != 0
    assert "refuses to run with profile 'aws'" in stderr
    assert not (tmp_path / "spire").exists()
