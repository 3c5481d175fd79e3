"""Structured JSON logs (structlog) for every process.

Event names are short snake-case verbs; context such as ``jti`` or ``tool`` is bound
once per request. Nothing here ever receives a token, password or SVID: callers log
``jti``s, lease ids and hashes only.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(service: str, level: int = logging.INFO) -> structlog.stdlib.BoundLogger:
    """JSON lines on stderr, one event per line, tagged with the service name."""
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level)
    for noisy in ("httpx", "httpx2", "httpcore", "mcp", "strands", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    log: structlog.stdlib.BoundLogger = structlog.get_logger(service=service)
    return log
