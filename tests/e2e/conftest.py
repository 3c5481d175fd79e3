"""The whole local stack, started once for the end-to-end tests, as separate processes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from stackkit import running_stack

from trustloop.cli.session import sign_in
from trustloop.devstack.stack import Stack

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from trustloop.devstack.postgres import ClusterInfo


@pytest.fixture(scope="session")
def stack(pg_state_dir_factory: Callable[[str], Path]) -> Iterator[Stack]:
    state = pg_state_dir_factory("stack")
    with running_stack(state, model_transcript=state / "model-inputs.jsonl") as stack:
        yield stack


@pytest.fixture(scope="session")
def cluster_of(stack: Stack) -> ClusterInfo:
    assert stack.cluster is not None
    return stack.cluster


@pytest.fixture(scope="session")
def achen_token(stack: Stack) -> str:
    return sign_in(stack.settings, "achen")
