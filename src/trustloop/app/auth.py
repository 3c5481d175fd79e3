"""Sign-in routes and the session look-up every other route goes through.

``GET /auth/login`` starts the authorization code flow, ``GET /auth/callback``
finishes it, ``POST /auth/logout`` revokes the sign-in at the IdP and forgets the
session. Outcomes reach the page as a short ``notice`` code in the URL of ``/``
(never a token, never an exception's text).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog
from starlette.responses import JSONResponse, RedirectResponse, Response

from trustloop.app.oidc import (
    IdpUnavailableError,
    OidcClient,
    SessionEndedError,
    SignInError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import Request

    from trustloop.app.oidc import Tokens
    from trustloop.app.sessions import CookiePolicy, Session, SessionStore

log = structlog.get_logger("trustloop.app")

SIGN_IN_REQUIRED = "Sign in to ask a question."
SESSION_EXPIRED = "Your session has expired. Sign in again to continue."
WRONG_ORIGIN = "This request did not come from the trustloop page."


@dataclass
class Auth:
    """The app's sign-in machinery: one OIDC client, one session store."""

    oidc: OidcClient
    store: SessionStore
    cookies: CookiePolicy
    app_url: str
    clock: Callable[[], float]

    # -- looking sessions up -------------------------------------------------------

    def session_of(self, request: Request) -> Session | None:
        return self.store.get(request.cookies.get(self.cookies.name))

    def had_session(self, request: Request) -> bool:
        """Whether the browser presented a session cookie (live or not)."""
        return bool(request.cookies.get(self.cookies.name))

    async def tokens_of(self, session: Session) -> Tokens | None:
        """The session's tokens, refreshed when near expiry; None: sign in again."""
        async with session.refresh_lock:
            tokens = session.tokens
            if tokens is None:
                return None
            if not tokens.needs_refresh(self.clock()):
                return tokens
            try:
                session.tokens = await self.oidc.refresh(tokens)
            except SessionEndedError:
                log.info("session_ended", reason="refresh_refused")
                self.store.remove(session)
                return None
            except (IdpUnavailableError, SignInError) as exc:
                log.warning("refresh_failed", error_type=type(exc).__name__)
                if self.clock() >= tokens.expires_at:
                    return None  # the old token is dead; the session may recover
                return tokens
            log.info("tokens_refreshed", sub=tokens.sub)
            return session.tokens

    def refusal(self, request: Request, *, status: int = 401) -> JSONResponse:
        """Why a signed-out request was refused: never signed in, or expired."""
        if self.had_session(request):
            return problem(status, "session_expired", SESSION_EXPIRED)
        return problem(status, "sign_in_required", SIGN_IN_REQUIRED)

    # -- routes ------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        """Send the browser to the IdP with a fresh state, nonce and PKCE challenge."""
        own = urlsplit(self.app_url).netloc
        if request.headers.get("host") != own:
            # The cookie must be set on the host the IdP redirects back to.
            return RedirectResponse(f"{self.app_url.rstrip('/')}/auth/login", 302)
        session = self.session_of(request)
        if session is not None and session.signed_in:
            return RedirectResponse("/", 303)
        try:
            login = await self.oidc.begin()
        except IdpUnavailableError:
            log.warning("idp_unavailable", step="login")
            return notice("idp_unavailable")

        session = session or self.store.create()
        self.store.start_login(session, login)
        response = RedirectResponse(login.url, 302)
        self.set_cookie(response, session)
        return response

    async def callback(self, request: Request) -> Response:
        """Redeem the code; the session gets a new id once signed in."""
        session = self.session_of(request)
        if session is None or self.store.login_expired(session):
            return notice("signin_expired")
        login = session.login
        if login is None:
            return notice("signin_expired")
        if not secrets.compare_digest(
            request.query_params.get("state", ""), login.state
        ):
            # Not this sign-in's answer (a cross-site link, say): the one in
            # flight stays, so its real callback still completes.
            log.info("sign_in_failed", reason="state does not match")
            return notice("signin_failed")
        session.login = None  # one redemption, whatever its outcome
        try:
            tokens = await self.oidc.finish(login, dict(request.query_params))
        except SignInError as exc:
            log.info("sign_in_failed", reason=str(exc))
            return notice("signin_failed")
        except IdpUnavailableError:
            log.warning("idp_unavailable", step="callback")
            return notice("idp_unavailable")

        session = self.store.rotate(session)
        session.tokens = tokens
        session.new_conversation()
        log.info("signed_in", sub=tokens.sub)
        response = RedirectResponse("/", 303)
        self.set_cookie(response, session)
        return response

    async def logout(self, request: Request) -> Response:
        """Revoke at the IdP (RFC 7009), forget the session, clear the cookie."""
        if not same_origin(request):
            return problem(403, "wrong_origin", WRONG_ORIGIN)
        session = self.session_of(request)
        code = "signed_out"
        if session is not None:
            self.store.remove(session)
            if session.tokens is not None and not await self._revoke(session.tokens):
                code = "signed_out_not_revoked"
        response = notice(code)
        response.delete_cookie(
            self.cookies.name, path="/", secure=self.cookies.secure, httponly=True
        )
        return response

    async def _revoke(self, tokens: Tokens) -> bool:
        """Whether the IdP revoked both tokens (the page must not claim it if not)."""
        try:
            await self.oidc.sign_out(tokens)
        except IdpUnavailableError as exc:
            # The session is gone here regardless; the IdP's ends at token expiry.
            log.warning("sign_out_revoke_failed", sub=tokens.sub, error=str(exc))
            return False
        log.info("signed_out", sub=tokens.sub)
        return True

    def set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(
            self.cookies.name,
            session.id,
            path="/",
            httponly=True,
            secure=self.cookies.secure,
            samesite="lax",
        )


def same_origin(request: Request) -> bool:
    """A state-changing request must come from our own page (Origin = our host)."""
    origin = request.headers.get("origin")
    if not origin:
        return False
    return urlsplit(origin).netloc == request.headers.get("host")


def notice(code: str) -> RedirectResponse:
    return RedirectResponse(f"/?notice={code}", 303)


def problem(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": code, "message": message},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )
