"""The MCP server's IdP HTTP client (httpx over aiohttp) against real loopback sockets:
answers, the connection bound, every failure an httpx error, no second cookie jar.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx
import pytest

from trustloop.identity.idp_http import idp_http_client
from trustloop.identity.oauth import IdpClient, IdpUnavailableError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

BODY = b'{"active":true,"sub":"achen"}'


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


def _answer(body: bytes = BODY, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + extra
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


@asynccontextmanager
async def _server(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_form_post_gets_its_json_answer() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        seen.append(await _read_request(reader))
        writer.write(_answer())
        await writer.drain()
        writer.close()

    async with (
        _server(handler) as url,
        idp_http_client(timeout_s=5, connections=4) as http,
    ):
        response = await http.post(
            url + "/introspect",
            data={"token": "t0k", "client_id": "c"},
            headers={"Accept": "application/json"},
        )
    assert response.status_code == 200
    assert response.json() == {"active": True, "sub": "achen"}
    head, body = seen[0]
    assert head.startswith(b"POST /introspect HTTP/1.1\r\n")
    assert b"\r\naccept: application/json\r\n" in head.lower()
    assert b"application/x-www-form-urlencoded" in head.lower()
    assert body == b"token=t0k&client_id=c"


class KeepAlive:
    """A handler answering every request on a connection with ``answer(head)``."""

    def __init__(self, answer: Callable[[bytes], Awaitable[bytes]]) -> None:
        self.answer = answer
        self.connections = 0

    async def __call__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        try:
            while True:
                head, _ = await _read_request(reader)
                writer.write(await self.answer(head))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def test_concurrent_requests_share_at_most_the_allowed_connections() -> None:
    async def slowly(_head: bytes) -> bytes:
        await asyncio.sleep(0.02)
        return _answer()

    server = KeepAlive(slowly)
    async with (
        _server(server) as url,
        idp_http_client(timeout_s=5, connections=3) as http,
    ):
        answers = await asyncio.gather(
            *(http.post(url + "/token", data={"n": str(n)}) for n in range(16))
        )
    assert [a.status_code for a in answers] == [200] * 16
    assert 1 <= server.connections <= 3


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_refused_connection_is_a_connect_error() -> None:
    url = f"http://127.0.0.1:{_unused_port()}"
    async with idp_http_client(timeout_s=5, connections=4) as http:
        with pytest.raises(httpx.ConnectError) as caught:
            await http.post(url + "/token", data={"a": "b"})
    assert caught.value.request.url == httpx.URL(url + "/token")


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.close()


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    writer.close()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await asyncio.sleep(10)


async def _short_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await _read_request(reader)
    writer.write(_answer()[:-5])  # content-length promises five bytes more
    await writer.drain()
    writer.close()


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (_hang_up, httpx.RemoteProtocolError),
        (_garbage, httpx.RemoteProtocolError),
        (_silent, httpx.ReadTimeout),
        (_short_body, httpx.ReadError),
    ],
    ids=["hang-up", "not-http", "no-answer", "short-body"],
)
async def test_every_failure_is_an_httpx_error(
    handler: Handler, error: type[httpx.TransportError]
) -> None:
    async with (
        _server(handler) as url,
        idp_http_client(timeout_s=0.3, connections=4) as http,
    ):
        with pytest.raises(error):
            await http.post(url + "/token", data={"a": "b"})


async def test_the_idp_client_reports_an_unreachable_idp_by_error_class() -> None:
    issuer = f"http://127.0.0.1:{_unused_port()}/oauth2"
    async with idp_http_client(timeout_s=5, connections=4) as http:
        with pytest.raises(IdpUnavailableError) as caught:
            await IdpClient(issuer, http).introspect("t0k", client_assertion="svid")
    assert "discovery" in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_aiohttp_keeps_no_cookies_of_its_own() -> None:
    cookies: list[bytes] = []

    async def set_cookie(head: bytes) -> bytes:
        lines = head.split(b"\r\n")
        cookies.extend(line for line in lines if line.lower().startswith(b"cookie:"))
        return _answer(extra=b"set-cookie: lb=replica-7; Path=/\r\n")

    async with (
        _server(KeepAlive(set_cookie)) as url,
        idp_http_client(timeout_s=5, connections=1) as http,
    ):
        # A name, not an address: aiohttp's own jar ignores cookies from addresses.
        url = url.replace("127.0.0.1", "localhost")
        await http.post(url + "/token", data={"a": "b"})
        assert http.cookies.get("lb") == "replica-7"  # httpx's jar, as before
        http.cookies.clear()
        await http.post(url + "/token", data={"a": "b"})
    assert cookies == []
