"""A few reusable PostgreSQL connections for the lease engine (no psycopg_pool here).

Connections are autocommit; callers open explicit ``conn.transaction()`` blocks.
A connection that is broken, closed or left inside a transaction is discarded
instead of being reused, and so is an idle one the server has meanwhile closed
(a PostgreSQL restart): that is checked without a round trip, by reading what
the socket already holds, so a restart costs no failed lease
(tests/faults/test_fault_postgres_restart.py).
"""

from __future__ import annotations

import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq

Connection = psycopg.Connection[Any]


class ConnectionPool:
    """Hands out one connection per ``with`` block; keeps up to ``max_idle``."""

    def __init__(self, conninfo: str, *, max_idle: int = 4) -> None:
        self._conninfo = conninfo
        self._max_idle = max_idle
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        conn = self._take()
        try:
            yield conn
        finally:
            self._give(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self) -> Connection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if _reusable(conn):
                    return conn
                conn.close()
        return psycopg.connect(self._conninfo, autocommit=True)

    def _give(self, conn: Connection) -> None:
        if _reusable(conn):
            with self._lock:
                if len(self._idle) < self._max_idle:
                    self._idle.append(conn)
                    return
        conn.close()


def _reusable(conn: Connection) -> bool:
    return (
        not conn.closed
        and not conn.broken
        and conn.info.transaction_status == pq.TransactionStatus.IDLE
        and _still_connected(conn)
    )


def _still_connected(conn: Connection) -> bool:
    """False when the server spoke to an idle connection: on a pooled connection
    with no query running that is its goodbye (``AdminShutdown``, then EOF), or
    at worst a notice, and a new connection is cheap."""
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.OperationalError):
        return False
    return not readable
