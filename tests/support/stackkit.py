"""The whole local stack for a test module or session: started, loaded, stopped."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from trustloop.cli.load_cmd import load_into
from trustloop.devstack.stack import Stack
from trustloop.records.samples import samples_path

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@contextmanager
def running_stack(state_dir: Path, **overrides: Any) -> Iterator[Stack]:
    """Every part as its own process on free ports, the 42 sample bundles loaded."""
    stack = Stack.on_free_ports(state_dir, **overrides)
    stack.start()
    try:
        if stack.cluster is None:
            raise RuntimeError("the stack started without PostgreSQL")
        load_into(stack.cluster, samples_path(), stack.settings.state_dir)
        yield stack
    finally:
        stack.stop()
