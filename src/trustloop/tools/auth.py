"""The MCP server as an OAuth 2.0 resource server: bearer tokens checked by the IdP.

MCP authorization spec, "Token Handling": the server MUST validate that an access
token was issued for it as the intended audience (RFC 8707 §2). mcp 2.1 calls a
``TokenVerifier`` but checks no audience, so :class:`IntrospectionVerifier` does:
it introspects the token (RFC 7662 §2, authenticated with a JWT-SVID client
assertion) and accepts it only if it is active and its ``aud`` names this server.
A rejected token makes mcp answer 401 with ``WWW-Authenticate`` (RFC 6750 §3) and
the protected resource metadata URL (RFC 9728 §5.1).

The answer rides on the verified token (:class:`VerifiedToken`, held by mcp for
this request only) so that the tool call of the same request uses it as its
rhythm's step 1 instead of introspecting the same token again; it is handed out
once (:meth:`VerifiedToken.take_introspection`), so every tool call still has an
introspection of its own and nothing is cached across requests.

Exceptions::

    VerifierUnavailableError   the IdP or the Workload API could not answer;
                               :class:`UnavailableMiddleware` makes it a 503, so
                               a clinician is not told to sign in again for an
                               outage that is ours
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import structlog
from mcp.server.auth.provider import AccessToken
from pydantic import PrivateAttr

from trustloop.identity.oauth import IdpUnavailableError, Introspection, OAuthError
from trustloop.identity.rhythm import Introspected, audiences
from trustloop.identity.spiffe import WorkloadApiError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from trustloop.identity.types import Introspector, SvidSource

RETRY_AFTER_S = 5

log = structlog.get_logger(__name__)


class VerifierUnavailableError(Exception):
    """The token could not be checked right now; the caller may retry."""


class VerifiedToken(AccessToken):
    """mcp's ``AccessToken`` plus the introspection answer it was verified with."""

    _introspected: Introspected | None = PrivateAttr(default=None)

    def hold(self, found: Introspection, elapsed_ms: float) -> VerifiedToken:
        """Keep ``found`` (what verified this token) for this request's tool call."""
        self._introspected = Introspected(found, elapsed_ms)
        return self

    def take_introspection(self) -> Introspected | None:
        """The answer for this request's first tool call; None ever after."""
        taken, self._introspected = self._introspected, None
        return taken


class IntrospectionVerifier:
    """mcp's ``TokenVerifier``: RFC 7662 introspection plus the audience check."""

    def __init__(
        self, idp: Introspector, svids: SvidSource, *, issuer: str, resource: str
    ) -> None:
        if not issuer or not resource:
            raise ValueError("the verifier needs the IdP issuer and this resource")
        self._idp = idp
        self._svids = svids
        self._issuer = issuer
        self._resource = resource

    async def verify_token(self, token: str) -> AccessToken | None:
        """The verified token, or None (mcp answers 401) if it is not for us."""
        started = time.perf_counter()
        try:
            svid = await self._svids.afetch_jwt_svid(self._issuer)
            found = await self._idp.introspect(token, client_assertion=svid.token)
        except (IdpUnavailableError, WorkloadApiError) as exc:
            raise VerifierUnavailableError("token introspection unavailable") from exc
        except OAuthError as exc:
            # The IdP refused *us* (client authentication): an outage, not a bad token.
            log.warning("introspection_refused", error=exc.error)
            raise VerifierUnavailableError("token introspection refused") from exc

        if not found.active or not found.sub:
            return None
        if self._resource not in audiences(found.aud):
            log.info("token_audience_rejected", jti=found.jti)
            return None
        elapsed_ms = (time.perf_counter() - started) * 1000
        return VerifiedToken(
            token=token,
            client_id=found.client_id or "",
            scopes=(found.scope or "").split(),
            expires_at=found.exp,
            resource=self._resource,
            subject=found.sub,
            claims={"iss": self._issuer, "jti": found.jti},
        ).hold(found, elapsed_ms)


class UnavailableMiddleware:
    """Answers 503 ``temporarily_unavailable`` when the verifier cannot decide.

    Sits inside Starlette's error middleware and outside mcp's authentication
    middleware (``Starlette.add_middleware`` puts it there).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except VerifierUnavailableError:
            if started or scope["type"] != "http":
                raise
            log.warning("token_verification_unavailable")
            await _send_unavailable(send)


async def _send_unavailable(send: Send) -> None:
    body = json.dumps(
        {
            "error": "temporarily_unavailable",
            "error_description": "token introspection unavailable",
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(RETRY_AFTER_S).encode()),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
