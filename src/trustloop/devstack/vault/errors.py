"""The stand-in's one error type and its wire form, ``{"errors": [...]}``.

Statuses follow Vault: 400 for a malformed request or a failed login, 403 for a
missing or unknown client token and for a refused OBO token, 404 for an unknown
path, 500 when the audit device cannot record the request (nothing is handed out).
"""

from __future__ import annotations

from starlette.responses import JSONResponse


class VaultApiError(Exception):
    """A refusal with the HTTP status and the message Vault would send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message)


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"errors": [message]}, status_code=status)


def bad_request(message: str) -> VaultApiError:
    return VaultApiError(400, message)


def permission_denied(reason: str = "permission denied") -> VaultApiError:
    return VaultApiError(403, reason)


INTERNAL_ERROR = "internal error"
