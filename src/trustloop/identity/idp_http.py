"""The MCP server's HTTP client to the IdP: httpx's API over aiohttp's connections.

Every tool call makes two to five requests to the IdP (introspection, the
exchange, the step-up's Verify REST calls), so their cost is paid on every call.
httpx keeps its API (the IdP client, its timeouts, its errors, its cookie
handling are unchanged), and ``httpx-aiohttp`` hands the connection work to
aiohttp, whose pool and C HTTP parser take under half of httpcore's CPU per
request (docs/performance.md, "Fourth round").

Two things are ours, each small:

- **Errors.** ``httpx-aiohttp`` maps a refused connection to ``ConnectTimeout``
  and lets some aiohttp errors through unmapped (a malformed response). Every
  aiohttp failure leaves here as the closest ``httpx.TransportError``, so the
  callers' ``except httpx.HTTPError`` still covers everything and the error they
  log names what happened.
- **No second cookie jar.** aiohttp's session would keep cookies across the
  requests of different clinicians; its jar is a dummy, so httpx's stays the
  only one, as before.

TLS is httpx's: ``verify=True`` with ``trust_env=False`` (certifi's CAs).
"""

from __future__ import annotations

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

# Most specific first: the first class that matches names the httpx error.
_ERRORS: tuple[tuple[type[aiohttp.ClientError], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.TimeoutException),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.ClientOSError, httpx.NetworkError),
    (aiohttp.ClientError, httpx.TransportError),
)


class IdpTransport(AiohttpTransport):
    """``AiohttpTransport`` with every failure an httpx error and no cookie jar."""

    def get_client(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0,
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar()
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except (aiohttp.ClientError, httpx.TransportError) as exc:
            cause = exc if isinstance(exc, aiohttp.ClientError) else exc.__cause__
            if not isinstance(cause, aiohttp.ClientError):
                raise
            raise as_httpx_error(cause, request) from cause


def as_httpx_error(
    exc: aiohttp.ClientError, request: httpx.Request
) -> httpx.TransportError:
    """The httpx error for an aiohttp one, naming its class (never its URL)."""
    error = next(
        (error for kind, error in _ERRORS if isinstance(exc, kind)),
        httpx.TransportError,
    )
    return error(type(exc).__name__, request=request)


def idp_http_client(*, timeout_s: float, connections: int) -> httpx.AsyncClient:
    """An httpx client for the IdP keeping at most ``connections`` connections."""
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections
    )
    transport = IdpTransport(limits=limits, trust_env=False)
    return httpx.AsyncClient(
        transport=transport, timeout=timeout_s, limits=limits, trust_env=False
    )
