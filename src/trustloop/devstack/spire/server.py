"""The SPIRE stand-in process: one gRPC Workload API socket per workload plus the
JWKS bundle over HTTP, all on one asyncio loop.

:class:`SpireServer` is what ``python -m trustloop.devstack.spire`` runs;
:func:`serve_in_background` runs the same server on a thread for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import grpc
import uvicorn
from spiffe._proto import workload_pb2_grpc

from trustloop.devstack.spire.bundle_http import bundle_app
from trustloop.devstack.spire.keys import JwtAuthority
from trustloop.devstack.spire.workload_api import WorkloadApiServicer
from trustloop.devstack.spire.x509ca import X509Authority
from trustloop.settings import bind_address

if TYPE_CHECKING:
    from trustloop.settings import Settings

Clock = Callable[[], float]
STOP_GRACE_S = 1.0
MAX_UNIX_PATH = 107  # sockaddr_un.sun_path on Linux, less the NUL


def registered_workloads(settings: Settings) -> dict[str, str]:
    """Socket name -> SPIFFE ID of every workload the supervisor attests."""
    return {
        "mcp-server": settings.mcp_spiffe_id,
        "agent-runtime": settings.runtime_spiffe_id,
        # No part of the stack: the socket a local SIEM forwarder (or a test)
        # uses to read the IdP's events.
        "auditor": settings.auditor_spiffe_id,
    }


class SpireServer:
    """Workload API sockets and the bundle endpoint; keys made at construction."""

    def __init__(self, settings: Settings, *, clock: Clock = time.time) -> None:
        self.socket_dir = settings.spiffe_socket_dir.resolve()
        self.workloads = registered_workloads(settings)
        self.jwt_authority = JwtAuthority(
            settings.trust_domain,
            clock=clock,
            keys_file=settings.state_dir / "spire" / "jwt-keys.json",
        )
        self.x509_authority = X509Authority(settings.trust_domain, clock=clock)
        self._bind = bind_address(settings.spire_bundle_url)
        self._url_path = urlsplit(settings.spire_bundle_url.rstrip("/")).path
        self.bundle_url = ""
        self._stopping = asyncio.Event()
        self._grpc: list[grpc.aio.Server] = []
        self._http: uvicorn.Server | None = None
        self._http_loop: asyncio.Task[None] | None = None
        self._http_socket: socket.socket | None = None

    def socket_path(self, workload: str) -> Path:
        return self.socket_dir / f"{workload}.sock"

    async def start(self) -> None:
        """Listen on every socket and on the bundle URL; return once both answer."""
        self._prepare_socket_dir()
        for workload, spiffe_id in self.workloads.items():
            await self._start_workload_api(workload, spiffe_id)
        await self._start_http()

    def _prepare_socket_dir(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket_dir.chmod(0o700)

    async def _start_workload_api(self, workload: str, spiffe_id: str) -> None:
        path = self.socket_path(workload)
        if len(str(path).encode()) > MAX_UNIX_PATH:
            raise RuntimeError(f"socket path too long for a unix socket: {path}")
        _remove_stale_socket(path)

        server = grpc.aio.server()
        servicer = WorkloadApiServicer(
            spiffe_id, self.jwt_authority, self.x509_authority, self._stopping
        )
        workload_pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"unix:{path}")
        await server.start()
        path.chmod(0o600)

        self._grpc.append(server)

    async def _start_http(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(self._bind)
        host, port = sock.getsockname()[:2]
        self.bundle_url = f"http://{host}:{port}{self._url_path}"

        app = bundle_app(lambda: self.jwt_authority.jwks, self.bundle_url)
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,  # keep trustloop.logging's JSON lines
            log_level="warning",
            access_log=False,
        )
        server = uvicorn.Server(config)
        # serve() without its signal capture: this process owns SIGTERM/SIGINT.
        config.load()
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])

        self._http, self._http_socket = server, sock
        self._http_loop = asyncio.create_task(server.main_loop())

    async def stop(self) -> None:
        """Close streams, stop every listener and remove the sockets."""
        self._stopping.set()
        await asyncio.gather(*(server.stop(STOP_GRACE_S) for server in self._grpc))
        self._grpc.clear()
        for workload in self.workloads:
            self.socket_path(workload).unlink(missing_ok=True)
        await self._stop_http()

    async def _stop_http(self) -> None:
        if self._http is None or self._http_loop is None:
            return
        self._http.should_exit = True
        await self._http_loop
        sockets = [self._http_socket] if self._http_socket else None
        await self._http.shutdown(sockets=sockets)
        self._http = self._http_loop = self._http_socket = None


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket left by a previous run; refuse to touch anything else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"{path} exists and is not a socket")
    path.unlink()


@contextlib.contextmanager
def serve_in_background(
    settings: Settings, *, clock: Clock = time.time
) -> Iterator[SpireServer]:
    """Run a :class:`SpireServer` on its own thread and loop (tests, tools)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="spire", daemon=True)
    thread.start()
    server = SpireServer(settings, clock=clock)
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
