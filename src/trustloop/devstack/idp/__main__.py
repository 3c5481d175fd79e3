"""``python -m trustloop.devstack.idp``: serve the local IdP until SIGTERM.

Two servers in one process over one directory: the OAuth surface on ``idp_url``
(TCP) and the admin API on ``<state>/idp/admin.sock`` only (:mod:`.admin`). An
invalid policy or directory file stops the IdP before it serves anything.
"""

from __future__ import annotations

import asyncio
import socket
import sys

import structlog
import uvicorn
import uvloop

from trustloop.devstack.idp.admin import (
    admin_socket,
    bind_admin_socket,
    create_admin_app,
)
from trustloop.devstack.idp.app import build_idp, create_app
from trustloop.devstack.idp.directory import (
    Directory,
    DirectoryFileError,
    directory_file,
)
from trustloop.devstack.idp.policy import PolicyFileError
from trustloop.logging import configure
from trustloop.settings import Settings, bind_address, require_local
from trustloop.startup import freeze_startup_heap

# Longer than any client's idle keep-alive (httpx: 5 s), so a client never
# reuses a connection the server is closing at that moment.
KEEP_ALIVE_S = 75


def main() -> None:
    settings = Settings()
    require_local(settings, "the IdP stand-in")
    log = configure("idp")
    # Every line names the service: request tasks inherit this context.
    structlog.contextvars.bind_contextvars(service="idp")
    try:
        directory = Directory(directory_file(settings.state_dir))
        idp = build_idp(settings, facts=directory)
    except (PolicyFileError, DirectoryFileError) as exc:
        log.error("idp_refused_to_start", error=str(exc))
        sys.exit(f"the IdP refuses to start: {exc}")
    app = create_app(idp)
    admin = create_admin_app(directory, idp.keys)
    admin_sock = bind_admin_socket(admin_socket(settings.state_dir))
    host, port = bind_address(settings.idp_url)
    log.info("idp_starting", issuer=settings.idp_issuer, host=host, port=port)
    freeze_startup_heap()
    try:
        # uvloop and httptools (C): the IdP's CPU per tool call, docs/performance.md.
        uvloop.run(
            _serve(_config(app, host=host, port=port), _config(admin), admin_sock)
        )
    finally:
        admin_sock.close()
        admin_socket(settings.state_dir).unlink(missing_ok=True)


def _config(app: object, **where: object) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        **where,  # type: ignore[arg-type]
        log_config=None,  # keep trustloop.logging's JSON lines
        log_level="warning",
        access_log=False,
        http="httptools",
        timeout_keep_alive=KEEP_ALIVE_S,
    )


async def _serve(
    public: uvicorn.Config, admin: uvicorn.Config, admin_sock: socket.socket
) -> None:
    """Both servers until SIGTERM; either one ending stops the other."""
    servers = [uvicorn.Server(public), uvicorn.Server(admin)]
    tasks = [
        asyncio.create_task(servers[0].serve()),
        asyncio.create_task(servers[1].serve(sockets=[admin_sock])),
    ]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    main()
