"""Request bodies read at most :data:`MAX_BODY_BYTES`, JSON nesting bounded (ASGI).

Starlette hands an app the whole body, however large, and the AgentCore SDK, the
IdP's form parser and Vault's JSON reader each read it all before looking at its
size or its sender: a 48 MB body was read and parsed for anyone, signed in or not,
and a body of 200,000 ``[`` crashed the runtime's parser (an unaudited 500). This
middleware reads the body first, at most ``max_bytes`` (a Content-Length above it
is refused unread), refuses a JSON body that nests deeper than :data:`MAX_DEPTH`,
and hands the rest on unchanged. A refusal is 413 or 400 in the
server's own error shape (``error``), with one log line without the body.

Used by the agent runtime, the IdP stand-in and the Vault stand-in.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import structlog

from trustloop.json_depth import nested_deeper_than

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A 4,000-character prompt of characters outside the BMP, each JSON-escaped as a
# surrogate pair (\uXXXX\uXXXX, 12 bytes): 48,000 bytes, and room for the rest.
MAX_BODY_BYTES = 64 * 1024
# Deeper than any request the three servers take (Vault's and the runtime's are 1
# or 2 levels, a Verify push request 4).
MAX_DEPTH = 32

log = structlog.get_logger(__name__)


def runtime_error(reason: str) -> dict[str, Any]:
    """The agent runtime's error shape."""
    return {"error": f"invalid request: {reason}"}


class BodyLimit:
    """Pure ASGI middleware for every HTTP request of one server."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = MAX_BODY_BYTES,
        error: Callable[[str], dict[str, Any]] = runtime_error,
        event: str = "runtime_request_refused",
    ) -> None:
        self._app = app
        self._max = max_bytes
        self._error = error
        self._event = event

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self._max:
            await self._refuse(send, 413, "the body is larger than allowed", declared)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
            if len(body) > self._max:
                await self._refuse(send, 413, "the body is larger than allowed", None)
                return
        if body and _nests_too_deep(bytes(body)):
            await self._refuse(send, 400, "the body nests too deeply", len(body))
            return
        await self._app(scope, _replay(bytes(body), receive), send)

    async def _refuse(
        self, send: Send, status: int, reason: str, size: int | None
    ) -> None:
        log.warning(self._event, status=status, reason=reason, size=size)
        payload = json.dumps(self._error(reason)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _nests_too_deep(body: bytes) -> bool:
    """Whether a JSON body nests past :data:`MAX_DEPTH` (malformed JSON: not ours).

    Past the parser's own limit it fails outright; below it, a body 600 levels
    deep parses and then breaks whatever walks it recursively (Vault's audit
    device HMACs every value: an unaudited 500).
    """
    try:
        doc = json.loads(body)
    except RecursionError:
        return True
    except ValueError:
        return False
    return nested_deeper_than(doc, MAX_DEPTH)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            message: dict[str, Any] = {
                "type": "http.request",
                "body": body,
                "more_body": False,
            }
            return message
        return await receive()  # after the body: the disconnect, when it comes

    return replayed
