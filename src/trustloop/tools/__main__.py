"""``python -m trustloop.tools``: the MCP server on ``settings.mcp_url``."""

from __future__ import annotations

import anyio
import uvicorn

from trustloop.logging import configure
from trustloop.settings import Settings, bind_address
from trustloop.startup import freeze_startup_heap
from trustloop.tools.server import serving_app

# Longer than any client's idle keep-alive (httpx: 5 s), so a client never
# reuses a connection the server is closing at that moment.
KEEP_ALIVE_S = 75


async def serve(settings: Settings) -> None:
    host, port = bind_address(settings.mcp_url)
    async with serving_app(settings) as app:
        # Our JSON logging stays in charge; uvicorn only reports problems.
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            log_level="warning",
            access_log=False,
            http="httptools",
            timeout_keep_alive=KEEP_ALIVE_S,
        )
        freeze_startup_heap()
        await uvicorn.Server(config).serve()


def main() -> None:
    settings = Settings()
    log = configure("mcp")
    log.info("mcp_server_starting", url=settings.mcp_url, profile=settings.profile)
    # uvloop and httptools (C) instead of asyncio's loop and h11 (pure Python):
    # the server's own CPU per tool call (docs/performance.md).
    anyio.run(serve, settings, backend_options={"use_uvloop": True})


if __name__ == "__main__":
    main()
