"""``trustloop down --delete``: the stack's files and its database go, nothing else."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from trustloop.devstack.postgres import start_cluster, stop_cluster
from trustloop.devstack.state_folder import delete_state_folder

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = pytest.mark.integration


def _listens(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _as_the_stack_leaves_it(state_dir: Path) -> None:
    for folder in ("audit", "logs", "spire/sockets", "vault", "idp", "cli"):
        (state_dir / folder).mkdir(parents=True, exist_ok=True)
    (state_dir / "audit" / "mcp.jsonl").write_text("{}\n")
    (state_dir / "stack.lock").write_text("")


@pytest.mark.skipif(
    os.geteuid() != 0, reason="only root hands the server to 'postgres'"
)
def test_a_relocated_database_is_deleted_and_foreign_files_are_kept(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    """A clone under /root keeps PGDATA in /var/lib/trustloop: ``rm -rf`` missed it."""
    private = pg_state_dir_factory("delete-private")
    private.chmod(0o700)
    state_dir = private / "state"
    info = start_cluster(state_dir)
    try:
        assert info.data_dir.is_relative_to("/var/lib/trustloop")
        _as_the_stack_leaves_it(state_dir)
        (state_dir / "my-notes.txt").write_text("not trustloop's")

        kept = delete_state_folder(state_dir)

        assert kept == ["my-notes.txt"]
        assert not info.data_dir.exists()
        assert not info.data_dir.parent.exists()
        assert not _listens(info.port)
        assert sorted(p.name for p in state_dir.iterdir()) == ["my-notes.txt"]
    finally:
        stop_cluster(state_dir)


def test_down_delete_stops_and_deletes_the_stack_and_the_demos(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    state_dir = pg_state_dir_factory("delete-cli") / "state"
    demo = start_cluster(state_dir / "demo")  # a demo that died with its database up
    try:
        _as_the_stack_leaves_it(state_dir)
        _as_the_stack_leaves_it(state_dir / "demo")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTLOOP_")}
        env["TRUSTLOOP_STATE_DIR"] = str(state_dir)
        argv = [sys.executable, "-m", "trustloop.cli", "down", "--delete"]

        first = subprocess.run(argv, env=env, capture_output=True, text=True)
        again = subprocess.run(argv, env=env, capture_output=True, text=True)

        assert first.returncode == 0, first.stderr
        assert "stopped" in first.stdout
        assert f"deleted {state_dir}/ and its database" in first.stdout
        assert not state_dir.exists()
        assert not demo.data_dir.exists()
        assert not _listens(demo.port)
        assert again.returncode == 0, again.stderr
        assert "nothing was running" in again.stdout
    finally:
        stop_cluster(state_dir / "demo")


def test_links_are_removed_never_followed(tmp_path: Path) -> None:
    """A link named like the stack's entry goes; what it points at stays."""
    precious = tmp_path / "precious"
    (precious / "inside").mkdir(parents=True)
    (precious / "inside" / "file.txt").write_text("keep me")
    target = tmp_path / "real-state"
    target.mkdir()
    for name in ("audit", "postgres", "logs"):
        (target / name).symlink_to(precious / "inside", target_is_directory=True)
    (target / "stack.lock").symlink_to(precious / "inside" / "file.txt")
    state_dir = tmp_path / "state-link"
    state_dir.symlink_to(target, target_is_directory=True)

    kept = delete_state_folder(state_dir)

    assert kept == []
    assert (precious / "inside" / "file.txt").read_text() == "keep me"
    assert list(target.iterdir()) == []
    assert state_dir.is_symlink()
