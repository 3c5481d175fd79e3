"""``/mcp`` answers POST only: 405 to GET, DELETE and the rest, before anything else.

The server is stateless (no session to resume or end), and every request's bearer
is checked for that request alone. mcp still serves ``GET /mcp`` as a standalone
event stream, which stays open for as long as the client likes and outlives the
token that opened it (a revoked token's streams kept their sockets, about 90 KB
each, with nothing to bound them). The MCP transport lets a server refuse GET with
405 when it offers no such stream, and DELETE with 405 when clients may not end
sessions; neither is used by our clients.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

_BODY = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "only POST is served on this endpoint"},
    }
).encode()


class PostOnly:
    """Pure ASGI middleware: the MCP endpoint at ``path`` takes POST only."""

    def __init__(self, app: ASGIApp, *, path: str) -> None:
        self._app = app
        self._path = path.rstrip("/") or "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] == "POST"
            or (scope["path"].rstrip("/") or "/") != self._path
        ):
            await self._app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 405,
                "headers": [
                    (b"allow", b"POST"),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_BODY)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _BODY})
