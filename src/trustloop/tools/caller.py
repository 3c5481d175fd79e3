"""Who a tool acts for: the rhythm, and the bearer token of the request served.

The server is stateless: each call reads its own request's verified token (mcp's
auth context) and keeps it only for the length of that call, and may use the
bearer check's introspection of it as the call's own, once
(:func:`request_introspection`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from secrets import compare_digest
from typing import TYPE_CHECKING

from mcp.server.auth.middleware.auth_context import get_access_token

from trustloop.identity.rhythm import sign_in_again
from trustloop.tools.auth import VerifiedToken

if TYPE_CHECKING:
    from trustloop.identity.rhythm import Introspected, Rhythm


def current_bearer() -> str | None:
    """The verified bearer token of the request being served (never stored)."""
    verified = get_access_token()
    return verified.token if verified is not None else None


def request_introspection(token: str) -> Introspected | None:
    """The bearer check's introspection of ``token`` in the request being served.

    Handed out once per request (the rhythm's ``introspected``): a second tool
    call, or a token other than the request's own, introspects afresh.
    """
    verified = get_access_token()
    if not isinstance(verified, VerifiedToken):
        return None
    if not compare_digest(verified.token.encode(), token.encode()):
        return None
    return verified.take_introspection()


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
