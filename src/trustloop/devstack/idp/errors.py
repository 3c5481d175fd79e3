"""OAuth error responses (RFC 6749 §5.2), raised by the IdP's handlers.

One exception, :class:`OAuthProblem`, carries the spec's ``error`` code, an
``error_description`` safe to show the client, and the HTTP status. The app renders
it as JSON with ``Cache-Control: no-store``. Descriptions say what the spec lets
them say: which parameter was refused, never which part of a credential failed.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthProblem(Exception):
    """An RFC 6749 §5.2 error answer."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> JSONResponse:
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status, headers=NO_STORE)


def invalid_request(description: str) -> OAuthProblem:
    return OAuthProblem("invalid_request", description)


def invalid_client(description: str = "client authentication failed") -> OAuthProblem:
    # RFC 6749 §5.2: 401 when the client tried to authenticate.
    return OAuthProblem("invalid_client", description, 401)
