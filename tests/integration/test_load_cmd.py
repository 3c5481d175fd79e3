"""``trustloop load`` as a user runs it: clear errors, and a cluster it started
is left running when a stack began using it meanwhile."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import psycopg
import pytest

from trustloop.devstack.postgres import load_info, stop_cluster
from trustloop.devstack.state_marker import mark
from trustloop.records.fhir_import import bundle_files
from trustloop.records.samples import samples_path

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = pytest.mark.integration


def _load(state_dir: Path, source: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTLOOP_")}
    env["TRUSTLOOP_STATE_DIR"] = str(state_dir)
    argv = [sys.executable, "-m", "trustloop.cli", "load", source]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def _answers(state_dir: Path) -> bool:
    try:
        with psycopg.connect(load_info(state_dir).admin_conninfo(), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def test_a_load_leaves_its_cluster_to_a_stack_that_started_meanwhile(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    """`up` reused the cluster a load had started; the load then stopped it."""
    state_dir = pg_state_dir_factory("load-under-up") / "state"
    mark(state_dir)
    lock = os.open(state_dir / "stack.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as `up`'s supervisor does
        os.write(lock, f"{os.getpid()}\n".encode())

        done = _load(state_dir, str(bundle_files(samples_path())[0]))

        assert done.returncode == 0, done.stderr
        assert _answers(state_dir)
    finally:
        os.close(lock)
        stop_cluster(state_dir)


def test_a_load_alone_stops_the_cluster_it_started(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    """Control for the test above: without a stack, the load cleans up after itself."""
    state_dir = pg_state_dir_factory("load-alone") / "state"
    try:
        done = _load(state_dir, str(bundle_files(samples_path())[0]))

        assert done.returncode == 0, done.stderr
        assert not _answers(state_dir)
    finally:
        stop_cluster(state_dir)


def test_a_path_that_is_neither_file_nor_folder_is_one_clear_line(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    state_dir = pg_state_dir_factory("load-devnull") / "state"
    try:
        done = _load(state_dir, "/dev/null")

        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert "/dev/null: not a file or a folder" in done.stderr
    finally:
        stop_cluster(state_dir)
