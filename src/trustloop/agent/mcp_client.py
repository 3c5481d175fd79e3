"""strands' ``MCPClient``, closed without leaving a coroutine that never runs.

``MCPClient.stop`` (strands-agents as pinned) schedules its close signal with
``asyncio.run_coroutine_threadsafe`` on the background thread's loop even when
that loop has already stopped, as it has after a session that failed to start
(a refused token, say). The coroutine then never runs, and Python warns
"coroutine ... was never awaited" whenever it is garbage-collected, in any
later code. With the loop stopped there is nothing to signal: the loop is closed
here, and the parent resets the rest as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strands.tools.mcp import MCPClient

if TYPE_CHECKING:
    from types import TracebackType


class ClosingMCPClient(MCPClient):
    """An ``MCPClient`` whose ``stop`` never schedules work on a stopped loop."""

    def stop(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        thread, loop = self._background_thread, self._background_thread_event_loop
        if thread is None or loop is None or (thread.is_alive() and loop.is_running()):
            super().stop(exc_type, exc_val, exc_tb)
            return
        self._background_thread_event_loop = None  # the parent skips the signal
        try:
            super().stop(exc_type, exc_val, exc_tb)
        finally:
            thread.join()
            loop.close()
