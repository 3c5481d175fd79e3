"""A refused MCP session closes without a coroutine left to warn at collection."""

from __future__ import annotations

import contextlib
import gc
import warnings
from typing import Any

import pytest
from strands.types.exceptions import MCPClientInitializationError

from trustloop.agent.mcp_client import ClosingMCPClient


class _Refused(contextlib.AbstractAsyncContextManager[Any]):
    """A transport whose session fails on entry, as a refused one does."""

    async def __aenter__(self) -> Any:
        raise ConnectionError("the MCP server refused the session")

    async def __aexit__(self, *exc: object) -> None:
        return None


def test_a_session_that_never_started_leaves_nothing_never_awaited() -> None:
    """strands' own stop() schedules a close on the stopped loop here, and the
    coroutine warns "never awaited" when collected (in whatever test runs next)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(20):
            client = ClosingMCPClient(_Refused, startup_timeout=5)
            with pytest.raises(MCPClientInitializationError):
                client.start()
            assert client._background_thread is None  # reset for reuse, as before
            gc.collect()

    assert [str(w.message) for w in caught] == []
