"""Fixtures shared by every test package.

``cluster``: one private PostgreSQL cluster for the whole session, with the schema
applied, the bundled Synthea samples loaded and the demo care teams set up.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from trustloop.devstack.demo_setup import apply_demo_setup
from trustloop.devstack.postgres import ClusterInfo, start_cluster, stop_cluster
from trustloop.records import samples_path
from trustloop.records.fhir_import import load_bundles
from trustloop.records.schema import apply_schema

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@pytest.fixture(scope="session")
def pg_state_dir_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], Path]]:
    """Make fresh state directories a cluster can live in.

    As root the server runs as the ``postgres`` OS user, which cannot enter pytest's
    private ``/tmp/pytest-of-root`` (pytest resets it to 0700 whenever any session
    starts, even one running in parallel). So as root the directories are made
    directly under the system temp dir with search-only permission for others,
    and removed at the end of the session.
    """
    made: list[Path] = []

    def make(name: str) -> Path:
        if os.geteuid() != 0:
            return tmp_path_factory.mktemp(name)
        state_dir = Path(tempfile.mkdtemp(prefix=f"trustloop-{name}-"))
        state_dir.chmod(0o711)
        made.append(state_dir)
        return state_dir

    yield make
    for state_dir in made:
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster(pg_state_dir_factory: Callable[[str], Path]) -> Iterator[ClusterInfo]:
    """A running cluster with schema, samples and demo set-up; stopped at the end."""
    state_dir = pg_state_dir_factory("pgstate")
    info = start_cluster(state_dir)
    try:
        apply_schema(info.admin_conninfo())
        load_bundles(info.admin_conninfo(), samples_path())
        apply_demo_setup(info.admin_conninfo())
        yield info
    finally:
        stop_cluster(state_dir)
