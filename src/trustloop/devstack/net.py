"""Loopback ports for the dev stack: one nothing listens on, and whether one is taken.

Both answers hold only at the moment they are given; a caller that binds later can
still lose the port to another process.

:func:`free_port` chooses below the kernel's ephemeral range. A stack picks its
ports first and starts its parts one after another, and every connection a part
makes meanwhile takes a source port from the ephemeral range: a port chosen
there could be taken by an outgoing connection before its server binds it (seen
once in a test run, ``address already in use``). Below the range only listeners
compete.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"
LOWEST_PORT = 10000  # well above the registered services most hosts run
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_TRIES = 64
_given: set[int] = set()  # never the same port twice from one process


def free_port() -> int:
    """A loopback port nothing listens on right now, below the ephemeral range.

    Falls back to a port the OS picks (in the ephemeral range) when the range is
    unknown or no port below it is free.
    """
    below = _ephemeral_low()
    if below is not None and below - 1 > LOWEST_PORT:
        for _ in range(_TRIES):
            port = random.randint(LOWEST_PORT, below - 1)  # noqa: S311 - not a secret
            if port not in _given and port_is_free(port):
                _given.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        chosen: int = sock.getsockname()[1]
    return chosen


def _ephemeral_low() -> int | None:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


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
