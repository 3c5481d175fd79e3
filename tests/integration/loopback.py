"""Real HTTP servers on loopback for the integration tests: an ASGI app under uvicorn
in a daemon thread, on a socket bound before the server starts.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from collections.abc import Iterator

    from starlette.types import ASGIApp

START_TIMEOUT_S = 10.0


class ServerThread:
    """A uvicorn server on a pre-bound loopback socket, run in a daemon thread.

    With ``port=0`` the OS picks the port; pass one when the app must know its own
    URL before it is built.
    """

    def __init__(self, app: ASGIApp, port: int = 0) -> None:
        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets
        # only then; without it every JSON answer waits ~40 ms for a delayed ACK.
        self._sock = socket.socket(
            socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )
        # As uvicorn's own bind does, so a port chosen in advance binds at once.
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        """Start serving; return once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@contextmanager
def serve_in_thread(app: ASGIApp, port: int = 0) -> Iterator[str]:
    """Serve ``app`` on loopback for the ``with`` block; yields its base URL."""
    server = ServerThread(app, port).start()
    try:
        yield server.url
    finally:
        server.stop()
