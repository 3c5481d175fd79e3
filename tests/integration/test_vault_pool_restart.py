"""The Vault stand-in's connection pool after a PostgreSQL restart."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from trustloop.devstack.postgres import start_cluster, stop_cluster
from trustloop.devstack.vault.pgpool import ConnectionPool

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = pytest.mark.integration


def test_pool_drops_idle_connections_the_server_closed(
    pg_state_dir_factory: Callable[[str], Path],
) -> None:
    """The first lease after a restart gets a live connection, not a dead one."""
    state = pg_state_dir_factory("poolrestart")
    info = start_cluster(state)
    pool = ConnectionPool(info.admin_conninfo())
    try:
        with pool.connection() as conn:
            conn.execute("select 1")
        stop_cluster(state)
        assert start_cluster(state).port == info.port

        with pool.connection() as conn:
            row = conn.execute("select 1").fetchone()

        assert row == (1,)
    finally:
        pool.close()
        stop_cluster(state)
