"""``python -m trustloop.devstack.vault``: serve the stand-in on ``vault_addr``."""

from __future__ import annotations

import uvicorn

from trustloop.devstack.postgres import load_info
from trustloop.devstack.vault.app import build_app
from trustloop.logging import configure
from trustloop.settings import Settings, bind_address, require_local

LEASE_ENGINE_ROLE = "trustloop_lease_engine"


def main() -> None:
    settings = Settings()
    require_local(settings, "the Vault stand-in")
    log = configure("vault")

    conninfo = load_info(settings.state_dir).admin_conninfo(LEASE_ENGINE_ROLE)
    app = build_app(settings, conninfo=conninfo)
    host, port = bind_address(settings.vault_addr)
    log.info("vault_starting", host=host, port=port)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
