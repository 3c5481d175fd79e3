"""Loopback ports for the dev stack: one nothing listens on, and whether one is taken.

Both answers hold only at the moment they are given; a caller that binds later can
still lose the port to another process.
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A loopback port nothing listens on right now, chosen by the OS."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port


def port_is_free(port: int) -> bool:
    """Whether ``port`` on loopback can be bound right now by a server.

    Tested with ``SO_REUSEADDR``, as servers (PostgreSQL, uvicorn) bind: without
    it, the connections a just-stopped server leaves in TIME_WAIT make its own
    port look taken, and a restarted cluster would move to another port that no
    running part knows (tests/faults/test_fault_postgres_restart.py). Linux still
    refuses the bind while anything listens on the port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True
