"""The whole stack, as separate processes (see tests/e2e), shared by the fault tests.

One stack for this directory, not one per module: a start with the samples loaded
costs ~10 s, seven of them would double the suite's time. Every test therefore
restores what it breaks (in ``finally``) and signs in afresh (``token``). The
step-up timeout is short (:data:`faultkit.STEP_UP_TIMEOUT_S`) so that a push nobody
answers ends within the test; no other fault test opens a restricted chart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from faultkit import STEP_UP_TIMEOUT_S
from stackkit import running_stack

from trustloop.cli.session import sign_in
from trustloop.devstack.stack import Stack

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from trustloop.devstack.postgres import ClusterInfo


@pytest.fixture(scope="session")
def stack(pg_state_dir_factory: Callable[[str], Path]) -> Iterator[Stack]:
    state = pg_state_dir_factory("faults")
    with running_stack(state, step_up_timeout_s=STEP_UP_TIMEOUT_S) as stack:
        yield stack


@pytest.fixture(scope="session")
def cluster_of(stack: Stack) -> ClusterInfo:
    assert stack.cluster is not None
    return stack.cluster


@pytest.fixture
def token(stack: Stack) -> str:
    """A fresh sign-in as Dr. Chen (a restarted IdP forgets its old keys)."""
    return sign_in(stack.settings, "achen")
