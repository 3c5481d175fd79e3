"""The private cluster: authentication rules, pgaudit, restart and port handling."""

from __future__ import annotations

import os
import shutil
import socket
from typing import TYPE_CHECKING

import psycopg
import pytest

from trustloop.devstack.postgres import (
    ClusterError,
    ClusterInfo,
    load_info,
    start_cluster,
    stop_cluster,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


@pytest.mark.integration
def test_cluster_json_describes_the_running_cluster(cluster: ClusterInfo) -> None:
    state_dir = cluster.data_dir.parent.parent

    assert load_info(state_dir) == cluster
    assert cluster.host == "127.0.0.1"
    assert cluster.dbname == "trustloop"


@pytest.mark.integration
@pytest.mark.parametrize(
    "role", ["trustloop_admin", "trustloop_lease_engine", "trustloop_idp"]
)
def test_admin_roles_log_in_over_the_socket_without_password(
    cluster: ClusterInfo, role: str
) -> None:
    with psycopg.connect(cluster.admin_conninfo(role)) as conn:
        row = conn.execute("SELECT current_user").fetchone()

    assert row == (role,)


@pytest.mark.integration
def test_only_peer_and_loopback_scram_are_allowed(cluster: ClusterInfo) -> None:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        rules = conn.execute(
            "SELECT type, address, auth_method, options FROM pg_hba_file_rules"
        ).fetchall()
        encryption = conn.execute("SHOW password_encryption").fetchone()

    assert rules == [
        ("local", None, "peer", ["map=trustloop"]),
        ("host", "127.0.0.1", "scram-sha-256", None),
    ]
    assert encryption == ("scram-sha-256",)


@pytest.mark.integration
def test_pgaudit_is_loaded_and_logs_no_parameters(cluster: ClusterInfo) -> None:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        ext = conn.execute(
            "SELECT 1 FROM pg_extension WHERE extname = 'pgaudit'"
        ).fetchone()
        settings = {
            name: conn.execute(f"SHOW {name}".encode()).fetchone()
            for name in ("pgaudit.log", "pgaudit.log_parameter", "log_destination")
        }

    assert ext == (1,)
    assert settings == {
        "pgaudit.log": ("read, write, role, ddl",),
        "pgaudit.log_parameter": ("off",),
        "log_destination": ("jsonlog",),
    }


@pytest.mark.integration
def test_load_info_without_a_cluster_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="no PostgreSQL cluster"):
        load_info(tmp_path)


@pytest.mark.integration
def test_restart_moves_to_a_free_port_when_its_own_is_taken(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    state_dir = pg_state_dir_factory("restart")
    first = start_cluster(state_dir)
    stop_cluster(state_dir)
    stop_cluster(state_dir)  # a no-op when not running

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", first.port))
        squatter.listen()
        second = start_cluster(state_dir)
    try:
        again = start_cluster(state_dir)  # running: a no-op
        with psycopg.connect(second.admin_conninfo()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        stop_cluster(state_dir)

    assert second.port != first.port
    assert again == second == load_info(state_dir)


@pytest.mark.integration
@pytest.mark.skipif(
    os.geteuid() != 0, reason="only root hands the server to 'postgres'"
)
def test_a_state_dir_postgres_cannot_reach_gets_its_server_files_elsewhere(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    """A clone under /root (0700) still runs: PGDATA moves where postgres can go."""
    private = pg_state_dir_factory("private")
    private.chmod(0o700)
    state_dir = private / "state"
    info = start_cluster(state_dir)
    try:
        assert info.data_dir.is_relative_to("/var/lib/trustloop")
        assert load_info(state_dir).data_dir == info.data_dir
        with psycopg.connect(info.admin_conninfo()) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        stop_cluster(state_dir)
        shutil.rmtree(info.data_dir.parent, ignore_errors=True)
