"""Serve the web app with uvicorn on ``Settings.app_url``."""

from __future__ import annotations

import uvicorn

from trustloop.settings import Settings, bind_address


def main() -> None:
    """``python -m trustloop.app``: listen where ``app_url`` says."""
    from trustloop import logging as trustloop_logging
    from trustloop.app.server import create_app

    log = trustloop_logging.configure("app")
    settings = Settings()
    host, port = bind_address(settings.app_url)
    app = create_app(settings)
    log.info("app_starting", host=host, port=port, invoke_mode=settings.app_invoke_mode)
    # uvicorn's access log would print /auth/callback's query (code, state).
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
