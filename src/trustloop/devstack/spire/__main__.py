"""``python -m trustloop.devstack.spire``: serve the Workload API until SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from trustloop.devstack.spire.server import SpireServer
from trustloop.logging import configure
from trustloop.settings import Settings, require_local
from trustloop.startup import freeze_startup_heap


async def serve(settings: Settings) -> None:
    log = configure("spire")
    server = SpireServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    try:
        await server.start()
        log.info(
            "workload_api_ready",
            sockets={w: str(server.socket_path(w)) for w in server.workloads},
            bundle_url=server.bundle_url,
            trust_domain=settings.trust_domain,
        )
        freeze_startup_heap()
        await stop.wait()
    finally:
        await server.stop()
    log.info("workload_api_stopped")


def main() -> None:
    settings = Settings()
    require_local(settings, "the SPIFFE Workload API stand-in")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
