"""``python -m trustloop.devstack.vault``: serve the stand-in on ``vault_addr``."""

from __future__ import annotations

import os

import uvicorn

from trustloop.devstack.postgres import load_info
from trustloop.devstack.vault.app import build_app
from trustloop.logging import configure
from trustloop.settings import IDP_JWKS_URL_ENV, Settings, bind_address, require_local
from trustloop.startup import freeze_startup_heap

LEASE_ENGINE_ROLE = "trustloop_lease_engine"
KEEP_ALIVE_S = 75


def main() -> None:
    settings = Settings()
    require_local(settings, "the Vault stand-in")
    log = configure("vault")

    conninfo = load_info(settings.state_dir).admin_conninfo(LEASE_ENGINE_ROLE)
    jwks_url = os.environ.get(IDP_JWKS_URL_ENV) or None
    app = build_app(settings, conninfo=conninfo, idp_jwks_url=jwks_url)
    host, port = bind_address(settings.vault_addr)
    log.info("vault_starting", host=host, port=port)
    freeze_startup_heap()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level="warning",
        access_log=False,
        # uvloop and httptools (C): Vault's CPU per tool call, docs/performance.md.
        loop="uvloop",
        http="httptools",
        # hvac's requests session keeps idle connections without a limit: the
        # server holds them long, so a reuse seldom races the server's close.
        timeout_keep_alive=KEEP_ALIVE_S,
    )


if __name__ == "__main__":
    main()
