"""``trustloop down --delete``: the stack's files and its database go, nothing else."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from trustloop.devstack.postgres import start_cluster, stop_cluster
from trustloop.devstack.state_folder import StateFolderError, delete_state_folder
from trustloop.devstack.state_marker import MARKER, ForeignFolderError, mark

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.integration


def _listens(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _as_the_stack_leaves_it(state_dir: Path) -> None:
    mark(state_dir)
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
        assert sorted(p.name for p in state_dir.iterdir()) == [MARKER, "my-notes.txt"]
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
    mark(target)
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


def _a_users_folder(root: Path) -> Path:
    """Not a state folder, but with entries named like the stack's."""
    (root / "vault" / "Daily notes").mkdir(parents=True)
    (root / "vault" / "Daily notes" / "today.md").write_text("mine")
    (root / "logs").mkdir()
    (root / "logs" / "build.log").write_text("mine")
    (root / "postgres").mkdir()
    (root / "postgres" / "README").write_text("a checkout of mine")
    (root / "my-notes.txt").write_text("mine")
    return root


def _everything(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_folder_without_the_marker_loses_nothing(tmp_path: Path) -> None:
    """TRUSTLOOP_STATE_DIR=$HOME by mistake: names alike, files not ours."""
    home = _a_users_folder(tmp_path / "home")
    before = _everything(home)

    with pytest.raises(StateFolderError, match=MARKER):
        delete_state_folder(home)

    assert _everything(home) == before


def test_a_demo_link_is_not_followed(tmp_path: Path) -> None:
    project = _a_users_folder(tmp_path / "project")
    (project / MARKER).write_text("")  # even marked: the link is not the demo's
    before = _everything(project)
    state_dir = tmp_path / "state"
    _as_the_stack_leaves_it(state_dir)
    (state_dir / "demo").symlink_to(project, target_is_directory=True)

    kept = delete_state_folder(state_dir)

    assert kept == ["demo"]
    assert _everything(project) == before
    assert sorted(p.name for p in state_dir.iterdir()) == [MARKER, "demo"]


@pytest.mark.parametrize("where", ["/", "home"])
def test_root_and_home_are_refused_even_with_force(where: str) -> None:
    target = Path("/") if where == "/" else Path.home()
    with pytest.raises(StateFolderError, match="home folder"):
        delete_state_folder(target, force=True)


def test_force_takes_an_unmarked_folder_but_only_the_stacks_entries(
    tmp_path: Path,
) -> None:
    """For a folder made before the marker existed (make clean's .trustloop)."""
    old = tmp_path / "old-state"
    (old / "audit").mkdir(parents=True)
    (old / "stack.lock").write_text("")
    (old / "my-notes.txt").write_text("mine")

    kept = delete_state_folder(old, force=True)

    assert kept == ["my-notes.txt"]
    assert sorted(p.name for p in old.iterdir()) == ["my-notes.txt"]


def test_a_folder_with_files_of_its_own_is_never_marked(tmp_path: Path) -> None:
    """Marked, it would lose its ``logs/`` and ``vault/`` to ``down --delete``."""
    home = _a_users_folder(tmp_path / "project")
    before = _everything(home)

    with pytest.raises(ForeignFolderError, match=r"logs, my-notes\.txt, postgres"):
        mark(home)

    assert _everything(home) == before
    with pytest.raises(StateFolderError, match=MARKER):
        delete_state_folder(home)


def test_a_new_or_empty_folder_or_one_holding_only_the_demo_is_marked(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with_demo = tmp_path / "with-demo"
    mark(with_demo / "demo")  # `make demo` ran first: <state>/demo is the demo's

    for folder in (tmp_path / "new", empty, with_demo):
        mark(folder)
        mark(folder)  # idempotent
        assert (folder / MARKER).is_file()


def test_a_demo_folder_without_its_marker_is_not_adopted(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    (state_dir / "demo" / "drafts").mkdir(parents=True)  # the user's own demo/

    with pytest.raises(ForeignFolderError, match="demo"):
        mark(state_dir)


def test_load_and_up_refuse_a_folder_with_files_of_their_own(tmp_path: Path) -> None:
    """The attack: one `trustloop load` adopted the folder, `down --delete` emptied it."""
    project = _a_users_folder(tmp_path / "project")
    before = _everything(project)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTLOOP_")}
    env["TRUSTLOOP_STATE_DIR"] = str(project)

    for command in (["load"], ["up"], ["down", "--delete"]):
        argv = [sys.executable, "-m", "trustloop.cli", *command]
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert "did not write" in done.stderr or MARKER in done.stderr, done.stderr

    assert _everything(project) == before
