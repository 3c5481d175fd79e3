"""Invoke the agent runtime over AgentCore's HTTP contract and read its SSE stream.

``POST /invocations`` with the prompt in the body, the clinician's token on
``Authorization`` (``jwt`` mode) or on the allowlisted custom header (``sigv4``
mode), and the conversation id on the session header. The runtime answers
server-sent events ``data: <json>``; an error mid-stream arrives as a final
``{"error": ...}`` frame on an HTTP 200, which this client raises.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Iterator
from typing import Any, Literal

import httpx

SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
USER_TOKEN_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Custom-User-Token"  # noqa: S105
InvokeMode = Literal["jwt", "sigv4"]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once per process.

    The same one ``httpx.Client()`` builds by default: certifi's CA bundle, or
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set. Loading the bundle costs about
    30 to 50 ms of CPU, which a client made per question paid every time, even
    for a loopback ``http://`` URL. It holds trust settings only, no credential;
    each question keeps its own client.
    """
    return httpx.create_ssl_context()


class InvocationError(Exception):
    """The runtime refused the invocation or reported an error frame."""


def invoke(
    runtime_url: str,
    prompt: str,
    *,
    access_token: str,
    session_id: str,
    mode: InvokeMode = "jwt",
    timeout: float = 120.0,
) -> Iterator[dict[str, Any]]:
    """Yield the runtime's frames (``text``, ``tool``, ``done``) as they arrive."""
    headers = {SESSION_HEADER: session_id, "Accept": "text/event-stream"}
    if mode == "jwt":
        headers["Authorization"] = f"Bearer {access_token}"
    else:
        # Locally nothing signs; on AgentCore, SigV4 would fill Authorization.
        headers[USER_TOKEN_HEADER] = access_token
    url = f"{runtime_url.rstrip('/')}/invocations"
    try:
        with (
            httpx.Client(timeout=timeout, verify=tls_context()) as http,
            http.stream(
                "POST", url, json={"prompt": prompt}, headers=headers
            ) as response,
        ):
            if response.status_code != 200:
                response.read()
                raise InvocationError(f"runtime answered HTTP {response.status_code}")
            yield from _frames(response)
    except httpx.HTTPError as exc:
        # The request's URL and headers stay out: the headers hold the token.
        raise InvocationError(
            f"the agent runtime at {runtime_url} stopped answering"
            f" ({type(exc).__name__}); is the stack still running?"
        ) from None


def _frames(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        frame = parse_frame(line)
        if frame is None:
            continue
        if "error" in frame:
            raise InvocationError(str(frame["error"]))
        yield frame


def parse_frame(line: str) -> dict[str, Any] | None:
    """One SSE ``data:`` line as a frame; anything else (comments, junk) is None."""
    if not line.startswith("data:"):
        return None
    try:
        frame = json.loads(line[5:].strip())
    except ValueError:
        return None
    if isinstance(frame, str):  # a bare JSON string is answer text
        return {"type": "text", "text": frame}
    return frame if isinstance(frame, dict) else None
