"""free_port: below the ephemeral range, free, never the same twice."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from trustloop.devstack import net


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_ports_come_from_below_the_ephemeral_range_and_never_repeat() -> None:
    ports = [net.free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(net.LOWEST_PORT <= port < _ephemeral_low() for port in ports)
    assert all(net.port_is_free(port) for port in ports)


def test_a_port_something_listens_on_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken = next(
            port
            for port in range(net.LOWEST_PORT + 5000, _ephemeral_low())
            if port not in net._given and _try_bind(listener, port)
        )
        listener.listen()
        choices = iter(
            [taken, taken + 1 if taken + 1 < _ephemeral_low() else taken - 1]
        )
        monkeypatch.setattr(random, "randint", lambda _a, _b: next(choices))
        assert net.free_port() != taken


def _try_bind(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind((net.LOOPBACK, port))
    except OSError:
        return False
    return True
