"""strands' ``MCPClient``, closed without leaving a coroutine that never runs.

``MCPClient.stop`` (strands-agents as pinned) signals its background thread by
scheduling a coroutine with ``asyncio.run_coroutine_threadsafe``. When that
loop has already stopped, or stops before running it (a session that failed to
start, a refused token, say), the coroutine never runs, and Python warns
"coroutine ... was never awaited" whenever it is garbage-collected, in any later
code. Here the same signal is a plain callback (``call_soon_threadsafe``): one
the loop never runs is simply dropped when the loop closes. The parent then
joins the thread and resets its state as usual; the loop is closed here.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from strands.tools.mcp import MCPClient

if TYPE_CHECKING:
    from types import TracebackType


class ClosingMCPClient(MCPClient):
    """An ``MCPClient`` whose ``stop`` never leaves a coroutine unawaited."""

    def stop(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        thread, loop = self._background_thread, self._background_thread_event_loop
        if thread is None or loop is None or sys.is_finalizing():
            super().stop(exc_type, exc_val, exc_tb)
            return
        self._background_thread_event_loop = None  # the parent skips its signal
        if not loop.is_closed():
            loop.call_soon_threadsafe(self._signal_close)
        try:
            super().stop(exc_type, exc_val, exc_tb)  # joins the thread, resets
        finally:
            loop.close()

    def _signal_close(self) -> None:
        """On the background loop, as the parent's coroutine would."""
        if self._close_future and not self._close_future.done():
            self._close_future.set_result(None)
