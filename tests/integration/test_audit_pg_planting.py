"""Nothing a client sends before logging in to PostgreSQL joins a call's trace.

PostgreSQL logs a refused login's user name, and a bad startup option's value,
verbatim; anyone who reaches its port chooses them. Both ways planted a row into
the trace of whichever jti they named (docs/security.md, fourth round).
"""

from __future__ import annotations

import socket
import struct
import time
import uuid
from typing import TYPE_CHECKING

import psycopg
import pytest

from trustloop.audit.trace import role_name_for, trace

if TYPE_CHECKING:
    from pathlib import Path

    from trustloop.devstack.postgres import ClusterInfo

pytestmark = pytest.mark.integration


def _startup_packet(params: dict[str, str]) -> bytes:
    """A protocol 3.0 StartupMessage, as any client can send it."""
    body = struct.pack("!I", 196608)
    for key, value in params.items():
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def _send(port: int, packet: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(packet)
        sock.recv(4096)  # the server's error; it closes the connection


def _logged(log_dir: Path, text: str) -> bool:
    return any(text in p.read_text(errors="replace") for p in log_dir.glob("*.json"))


def _wait_for_log(log_dir: Path, text: str) -> None:
    for _ in range(50):
        if _logged(log_dir, text):
            return
        time.sleep(0.1)
    raise AssertionError("PostgreSQL never logged the attempt")


@pytest.mark.parametrize("how", ["failed-login", "startup-option"])
def test_text_sent_before_logging_in_plants_no_row(
    cluster: ClusterInfo, tmp_path: Path, how: str
) -> None:
    jti = str(uuid.uuid4())  # any call's: a victim's OBO
    planted = f"revoke FAILED; kept {role_name_for(jti)}"
    if how == "failed-login":
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(
                host="127.0.0.1",
                port=cluster.port,
                dbname=cluster.dbname,
                user=planted,
                password="guess",
                connect_timeout=5,
            )
    else:
        params = {"user": "achen", "database": "clinical", "replication": planted}
        _send(cluster.port, _startup_packet(params))
    log_dir = cluster.data_dir / "log"
    _wait_for_log(log_dir, planted)
    (tmp_path / "audit").mkdir()

    assert trace(jti, tmp_path / "audit", log_dir) == []
