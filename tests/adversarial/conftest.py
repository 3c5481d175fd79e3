"""The whole local stack, started once for every adversarial test.

``adv_stack`` runs every part as its own process (as ``trustloop up`` does) on free
loopback ports, with the Synthea samples loaded; ``probe`` (``support/adversary.py``)
answers what each refusal must leave unchanged: no ephemeral ``obo_%`` role, no
grant row, no exchange decision where none may happen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from adversary import Probe
from idp_lab import Lab, build_lab
from stackkit import running_stack

from trustloop.cli.session import sign_in
from trustloop.devstack.stack import Stack
from trustloop.identity.spiffe import WorkloadIdentity

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


@pytest.fixture(scope="session")
def adv_stack(pg_state_dir_factory: Callable[[str], Path]) -> Iterator[Stack]:
    with running_stack(pg_state_dir_factory("adversarial")) as stack:
        yield stack


@pytest.fixture(scope="session")
def probe(adv_stack: Stack) -> Probe:
    return Probe(adv_stack)


@pytest.fixture(scope="session")
def achen(adv_stack: Stack) -> str:
    """Dr. Chen's access token (code + PKCE and TOTP against the stack's IdP)."""
    return sign_in(adv_stack.settings, "achen")


@pytest.fixture(scope="session")
def bokafor(adv_stack: Stack) -> str:
    """Dr. Okafor's access token."""
    return sign_in(adv_stack.settings, "bokafor")


@pytest.fixture(scope="session")
def mcp_identity(adv_stack: Stack) -> Iterator[WorkloadIdentity]:
    """The MCP server's own Workload API socket: the attacker holds its SVIDs."""
    socket = adv_stack.settings.spiffe_socket_dir / "mcp-server.sock"
    identity = WorkloadIdentity(f"unix://{socket.resolve()}")
    yield identity
    identity.close()


@pytest.fixture(scope="session")
def lab(
    adv_stack: Stack, probe: Probe, tmp_path_factory: pytest.TempPathFactory
) -> Lab:
    """The real IdP app in process, with a frozen clock (``support/idp_lab.py``)."""
    return build_lab(adv_stack, probe, tmp_path_factory.mktemp("lab-idp"))
