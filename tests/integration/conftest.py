"""Fixtures shared by the integration tests.

``spire``: the SPIRE stand-in (Workload API sockets and the bundle endpoint), one per
test module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from trustloop.devstack.spire import SpireServer, serve_in_background
from trustloop.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module")
def spire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpireServer]:
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("spire"),
        spire_bundle_url="http://127.0.0.1:0",
    )
    with serve_in_background(settings) as server:
        yield server
