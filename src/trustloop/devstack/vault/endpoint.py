"""Every route runs through :class:`Gateway`: audit the request, handle, audit.

The order is Vault's: the request line is written before anything is looked at,
so a request that cannot be recorded does nothing (500). A handler answers by
calling :meth:`Exchange.respond`, which writes the response line first; the
credential handler calls it inside its database transaction, so a credential
whose response cannot be recorded is rolled back and never handed out.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from trustloop.audit.chain import AuditWriteError
from trustloop.devstack.vault.audit import AuditDevice, AuditRecord
from trustloop.devstack.vault.errors import (
    INTERNAL_ERROR,
    VaultApiError,
    error_response,
    permission_denied,
)
from trustloop.devstack.vault.tokens import TokenInfo, TokenStore

log = structlog.get_logger(__name__)

Handler = Callable[["Exchange"], None]
Endpoint = Callable[[Request], Awaitable[Response]]
MAX_BODY_BYTES = 64 * 1024


class Exchange:
    """One request and, once :meth:`respond` was called, its answer."""

    def __init__(
        self, record: AuditRecord, device: AuditDevice, params: dict[str, str]
    ) -> None:
        self.record = record
        self.params = params
        self._device = device
        self._answer: Response | None = None

    @property
    def data(self) -> dict[str, Any]:
        return self.record.data

    def require_auth(self) -> TokenInfo:
        """The caller's client token info; 403 without a valid token."""
        if self.record.auth is None:
            raise permission_denied()
        return self.record.auth

    def respond(self, status: int, body: dict[str, Any] | None) -> None:
        """Record the answer, then keep it to send (raises AuditWriteError)."""
        self._device.log_response(self.record, body or {})
        if body is None:
            self._answer = Response(status_code=status)
        else:
            self._answer = JSONResponse(body, status_code=status)

    def fail(self, status: int, message: str) -> Response:
        self.record.error = message
        try:
            self._device.log_response(self.record, {"errors": [message]})
        except AuditWriteError:
            log.error("audit_write_failed", path=self.record.path)
            return error_response(500, INTERNAL_ERROR)
        return error_response(status, message)

    def answer(self) -> Response:
        if self._answer is None:
            raise RuntimeError("handler returned without responding")
        return self._answer


class Gateway:
    """Wraps handlers into audited Starlette endpoints."""

    def __init__(self, device: AuditDevice, tokens: TokenStore) -> None:
        self._device = device
        self._tokens = tokens

    def route(self, operation: str, handler: Handler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            return await self._handle(request, operation, handler)

        return endpoint

    async def _handle(
        self, request: Request, operation: str, handler: Handler
    ) -> Response:
        data, parse_error = await _read_json(request)
        record = self._record(request, operation, data)
        exchange = Exchange(record, self._device, dict(request.path_params))
        try:
            self._device.log_request(exchange.record)
        except AuditWriteError:
            log.error("audit_write_failed", path=exchange.record.path)
            return error_response(500, INTERNAL_ERROR)
        if parse_error is not None:
            return exchange.fail(400, parse_error)

        try:
            await run_in_threadpool(handler, exchange)
        except VaultApiError as exc:
            return exchange.fail(exc.status, exc.message)
        except AuditWriteError:
            log.error("audit_write_failed", path=exchange.record.path)
            return error_response(500, INTERNAL_ERROR)
        except Exception:
            log.exception("request_failed", path=exchange.record.path)
            return exchange.fail(500, INTERNAL_ERROR)
        return exchange.answer()

    def _record(
        self, request: Request, operation: str, data: dict[str, Any]
    ) -> AuditRecord:
        token = request.headers.get("x-vault-token")
        record = AuditRecord(
            id=str(uuid.uuid4()),
            operation=operation,
            path=request.url.path.removeprefix("/v1/"),
            data=data,
            remote_address=request.client.host if request.client else "",
            client_token=token,
        )
        record.auth = self._tokens.lookup(token)
        return record


async def _read_json(request: Request) -> tuple[dict[str, Any], str | None]:
    """The JSON object body (``{}`` when empty) or a Vault-worded parse error."""
    body = await request.body()  # at most MAX_BODY_BYTES (app.py's BodyLimit)
    if not body.strip():
        return {}, None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return {}, "failed to parse JSON input"
    if not isinstance(data, dict):
        return {}, "failed to parse JSON input"
    return data, None
