"""Who a tool acts for: the rhythm, and the bearer token of the request served.

The server is stateless: each call reads its own request's verified token (mcp's
auth context) and keeps it only for the length of that call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp.server.auth.middleware.auth_context import get_access_token

from trustloop.identity.rhythm import sign_in_again

if TYPE_CHECKING:
    from trustloop.identity.rhythm import Rhythm


def current_bearer() -> str | None:
    """The verified bearer token of the request being served (never stored)."""
    verified = get_access_token()
    return verified.token if verified is not None else None


@dataclass(frozen=True)
class Caller:
    """The rhythm every tool call runs, and where the caller's token comes from."""

    rhythm: Rhythm
    bearer: Callable[[], str | None] = current_bearer

    def token(self) -> str:
        """The caller's token; none at all is "sign in again"."""
        token = self.bearer()
        if not token:
            raise sign_in_again()
        return token
