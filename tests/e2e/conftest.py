"""The whole local stack, started once for the end-to-end tests, as separate processes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from trustloop.cli.load_cmd import load_into
from trustloop.cli.session import sign_in
from trustloop.devstack.stack import Stack
from trustloop.records.samples import samples_path

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from trustloop.devstack.postgres import ClusterInfo


@pytest.fixture(scope="session")
def stack(pg_state_dir_factory: Callable[[str], Path]) -> Iterator[Stack]:
    state = pg_state_dir_factory("stack")
    stack = Stack.on_free_ports(state, model_transcript=state / "model-inputs.jsonl")
    stack.start()
    try:
        assert stack.cluster is not None
        load_into(stack.cluster, samples_path(), stack.settings.state_dir)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def cluster_of(stack: Stack) -> ClusterInfo:
    assert stack.cluster is not None
    return stack.cluster


@pytest.fixture(scope="session")
def achen_token(stack: Stack) -> str:
    return sign_in(stack.settings, "achen")
