"""The MCP client transport that carries the clinician's token, and only there.

mcp 2.1's streamable-HTTP client turns an HTTP 401 into a bare JSON-RPC error
("Server returned an error response"), so a transport built from plain ``headers``
cannot tell an expired sign-in from a broken server. :class:`ClinicianBearerAuth`
sets ``Authorization: Bearer <token>`` on every request (RFC 6750 §2.1) and notes a
401 answer, which the runtime turns into "sign in again".

Each invocation has its own HTTP client (its own connections, its own token); they
share one TLS context per process, built on first use: building one loads the CA
store, about 28 ms of CPU, which was half of the runtime's CPU per question. The
context holds trust settings only, never a credential.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx2

# mcp's own client defaults: 30 s, and 300 s to read a long-lived SSE stream.
_TIMEOUT = httpx2.Timeout(30.0, read=300.0)


class ClinicianBearerAuth(httpx2.Auth):
    """Bearer auth for one invocation's MCP client; never prints the token."""

    def __init__(self, token: str) -> None:
        self._token = token
        self.rejected = False
        self.unverifiable = False

    def __repr__(self) -> str:
        return "ClinicianBearerAuth(token=<redacted>)"

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            self.rejected = True
        elif response.status_code == 503:
            self.unverifiable = True


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx2's default verifying context (system CA store), built once."""
    return httpx2.create_ssl_context()


def streamable_http(
    url: str, auth: ClinicianBearerAuth
) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """A transport factory for ``MCPClient(transport_callable=...)``."""

    @asynccontextmanager
    async def open_transport() -> AsyncIterator[Any]:
        from mcp.client.streamable_http import streamable_http_client

        # streamable_http_client closes only clients it created: own this one here.
        # No redirects: the token goes to settings.mcp_url and nowhere else.
        async with (
            httpx2.AsyncClient(
                auth=auth,
                timeout=_TIMEOUT,
                follow_redirects=False,
                verify=tls_context(),
            ) as http_client,
            streamable_http_client(url=url, http_client=http_client) as streams,
        ):
            yield streams

    return open_transport
