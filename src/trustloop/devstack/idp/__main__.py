"""``python -m trustloop.devstack.idp``: serve the local IdP until SIGTERM."""

from __future__ import annotations

import structlog
import uvicorn

from trustloop.devstack.idp.app import build_idp, create_app
from trustloop.logging import configure
from trustloop.settings import Settings, bind_address, require_local


def main() -> None:
    settings = Settings()
    require_local(settings, "the IdP stand-in")
    log = configure("idp")
    # Every line names the service: request tasks inherit this context.
    structlog.contextvars.bind_contextvars(service="idp")
    app = create_app(build_idp(settings))
    host, port = bind_address(settings.idp_url)
    log.info("idp_starting", issuer=settings.idp_issuer, host=host, port=port)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,  # keep trustloop.logging's JSON lines
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
