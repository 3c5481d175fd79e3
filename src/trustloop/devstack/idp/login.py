"""The login flow behind ``/oauth2/authorize``: password, then a second factor.

Routes (pages from :mod:`.login_pages`; state in :mod:`.login_state`)::

    GET  /oauth2/authorize        validate the request (:mod:`.authorize`), login page
    POST /oauth2/login            username and password     -> second factor page
    GET  /oauth2/login/factor     the second factor page (a TOTP code or a push)
    POST /oauth2/login/otp        a TOTP code (:mod:`.totp`) -> done
    POST /oauth2/login/push       start a push (:mod:`.login_push`) -> waiting page
    GET  /oauth2/login/push       the waiting page; done once approved

Done: for an authorization request, a sign-in session starts and the browser is
sent to ``redirect_uri?code=…&state=…&iss=…``; for a device login
(:mod:`.device_pages`), to the device approval page. Every wrong password or code
says only "wrong username, password or code", is audited as ``sign_in_failed``
and counts against the transaction, which ends after five.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import anyio.to_thread
import structlog
from starlette.responses import RedirectResponse, Response

from trustloop.devstack.demo import by_username
from trustloop.devstack.idp import login_pages as pages
from trustloop.devstack.idp.authorize import (
    ErrorPageError,
    ErrorRedirectError,
    parse_request,
    redirect_to,
)
from trustloop.devstack.idp.clients import WEB_CLIENT_ID
from trustloop.devstack.idp.codes import CodeGrant
from trustloop.devstack.idp.login_state import (
    BROWSER_COOKIE,
    LoginTransaction,
    new_browser_id,
)

if TYPE_CHECKING:
    from starlette.requests import Request

    from trustloop.audit.chain import AuditLog
    from trustloop.devstack.idp.clients import PublicClients
    from trustloop.devstack.idp.codes import AuthorizationCodes
    from trustloop.devstack.idp.login_push import LoginPushes
    from trustloop.devstack.idp.login_state import LoginTransactions
    from trustloop.devstack.idp.sessions import SignInSessions
    from trustloop.devstack.idp.totp import TotpVerifier
    from trustloop.devstack.idp.users import DemoUsers

MAX_FORM_BYTES = 4096
SIGN_IN = "Sign in"
CONFIRM = "Confirm it is you"
EXPIRED = "This sign-in has expired. Start again from the application."

log = structlog.get_logger("trustloop.devstack.idp")


class LoginFlow:
    """The handlers of the login pages."""

    def __init__(
        self,
        *,
        issuer: str,
        clients: PublicClients,
        transactions: LoginTransactions,
        users: DemoUsers,
        totp: TotpVerifier,
        pushes: LoginPushes,
        sessions: SignInSessions,
        codes: AuthorizationCodes,
        audit: AuditLog,
    ) -> None:
        self._issuer = issuer
        self._clients = clients
        self.transactions = transactions
        self._users = users
        self._totp = totp
        self._pushes = pushes
        self._sessions = sessions
        self._codes = codes
        self._audit = audit

    # -- the pages -----------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        try:
            authorization = parse_request(request.query_params, self._clients)
        except ErrorPageError as problem:
            return pages.page(
                "Sign-in problem", pages.message(str(problem)), status=400
            )
        except ErrorRedirectError as problem:
            return _redirect(problem.location(self._issuer), problem.redirect_uri)

        browser = request.cookies.get(BROWSER_COOKIE) or new_browser_id()
        tx = self.transactions.start(browser, request=authorization)
        response = self.login_page(tx)
        set_browser_cookie(response, browser)
        return response

    def login_page(
        self, tx: LoginTransaction, *, error: str | None = None, status: int = 200
    ) -> Response:
        body = pages.login_form(tx.id, tx.csrf, error=error)
        return pages.page(SIGN_IN, body, status=status, redirect_uri=_target(tx))

    async def password(self, request: Request) -> Response:
        form = await read_form(request)
        tx = self.transaction(request, form)
        if tx is None or tx.clinician is not None:
            return _expired()
        username, password = form.get("username", ""), form.get("password", "")

        clinician = await anyio.to_thread.run_sync(
            self._users.authenticate, username, password
        )
        if clinician is None:
            known = by_username(username)
            return self._wrong(tx, "password", known.sub if known else None)
        tx.clinician = clinician
        return _redirect(f"/oauth2/login/factor?tx={tx.id}")

    async def factor(self, request: Request) -> Response:
        tx = self._awaiting_factor(request, request.query_params.get("tx", ""))
        if tx is None:
            return _expired()
        return self._factor_page(tx)

    async def otp(self, request: Request) -> Response:
        form = await read_form(request)
        tx = self._awaiting_factor(request, form.get("tx", ""), form)
        if tx is None or tx.clinician is None:
            return _expired()
        username = tx.clinician.username

        secret = self._users.totp_secret(username)
        if not self._totp.verify(username, secret, form.get("otp", "").strip()):
            return self._wrong(tx, "otp", tx.clinician.sub)
        return self._done(tx, ("pwd", "otp"))

    async def push(self, request: Request) -> Response:
        form = await read_form(request)
        tx = self._awaiting_factor(request, form.get("tx", ""), form)
        if tx is None or tx.clinician is None:
            return _expired()
        started = self._pushes.start(tx.clinician.sub, _client_name(tx))
        tx.push_id = started.id
        return _redirect(f"/oauth2/login/push?tx={tx.id}")

    async def push_status(self, request: Request) -> Response:
        tx = self._awaiting_factor(request, request.query_params.get("tx", ""))
        if tx is None or tx.clinician is None or tx.push_id is None:
            return _expired()
        push = self._pushes.get(tx.push_id)
        if push is None or push.state == "EXPIRED":
            tx.push_id = None
            return self._factor_page(tx, error="The push expired. Try again.")
        if push.state == "VERIFY_FAILED":
            self._failed("push_denied", tx)
            self.transactions.finish(tx)
            return self._give_up(tx, "You declined the sign-in.")
        if push.state == "VERIFY_SUCCESS":
            tx.push_id = None  # an approval finishes one login only
            return self._done(tx, ("pwd", "push"))
        body = pages.push_waiting(tx.id, push.message)
        return pages.page(CONFIRM, body, refresh=pages.refresh_tag(tx.id))

    async def stylesheet(self, request: Request) -> Response:
        return pages.stylesheet()

    # -- steps -----------------------------------------------------------------

    def transaction(
        self, request: Request, form: dict[str, str] | None = None, tx_id: str = ""
    ) -> LoginTransaction | None:
        """The request's transaction, from its browser, with a matching CSRF token."""
        browser = request.cookies.get(BROWSER_COOKIE, "")
        tx = self.transactions.find(tx_id or (form or {}).get("tx", ""), browser)
        if tx is None:
            return None
        if form is not None and not tx.csrf_matches(form.get("csrf", "")):
            return None
        return tx

    def _awaiting_factor(
        self, request: Request, tx_id: str, form: dict[str, str] | None = None
    ) -> LoginTransaction | None:
        tx = self.transaction(request, form, tx_id)
        if tx is None or tx.clinician is None or tx.amr is not None:
            return None
        return tx

    def _factor_page(
        self, tx: LoginTransaction, *, error: str | None = None
    ) -> Response:
        name = tx.clinician.name if tx.clinician else ""
        body = pages.second_factor(tx.id, tx.csrf, name, error=error)
        status = 401 if error == pages.WRONG else 200
        return pages.page(CONFIRM, body, status=status, redirect_uri=_target(tx))

    def _wrong(self, tx: LoginTransaction, reason: str, sub: str | None) -> Response:
        self._failed(reason, tx, sub)
        if self.transactions.failed(tx):
            return self._give_up(tx, "Too many attempts. Start again.")
        if reason == "password":
            return self.login_page(tx, error=pages.WRONG, status=401)
        return self._factor_page(tx, error=pages.WRONG)

    def _failed(
        self, reason: str, tx: LoginTransaction, sub: str | None = None
    ) -> None:
        if sub is None and tx.clinician is not None:
            sub = tx.clinician.sub
        client_id = tx.request.client_id if tx.request else "trustloop-cli"
        self._audit.append(
            "sign_in_failed", reason=reason, sub=sub, client_id=client_id
        )
        log.info("sign_in_failed", reason=reason, sub=sub)

    def _give_up(self, tx: LoginTransaction, text: str) -> Response:
        if tx.request is None:
            return pages.page(SIGN_IN, pages.message(text), status=403)
        params = {"error": "access_denied", "error_description": "sign-in failed"}
        params.update(state=tx.request.state, iss=self._issuer)
        location = redirect_to(tx.request.redirect_uri, params)
        return _redirect(location, tx.request.redirect_uri)

    def _done(self, tx: LoginTransaction, amr: tuple[str, ...]) -> Response:
        if tx.request is None:  # a device login: on to Approve/Deny
            tx.amr = amr
            return _redirect(f"/device/confirm?tx={tx.id}")
        request, clinician = tx.request, tx.clinician
        if clinician is None:
            return _expired()
        self.transactions.finish(tx)

        session = self._sessions.start(clinician, client_id=request.client_id, amr=amr)
        code = self._codes.issue(
            CodeGrant(
                client_id=request.client_id,
                redirect_uri=request.redirect_uri,
                code_challenge=request.code_challenge,
                scope=request.scope,
                nonce=request.nonce,
                sid=session.sid,
            )
        )
        params = {"code": code, "state": request.state, "iss": self._issuer}
        location = redirect_to(request.redirect_uri, params)
        return _redirect(location, request.redirect_uri)


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded body of at most 4 KiB; a repeated field keeps its first value."""
    body = (await request.body())[:MAX_FORM_BYTES]
    form: dict[str, str] = {}
    for key, value in parse_qsl(body.decode(errors="replace")):
        form.setdefault(key, value)
    return form


def set_browser_cookie(response: Response, browser: str) -> None:
    response.set_cookie(
        BROWSER_COOKIE, browser, httponly=True, samesite="lax", path="/"
    )


def _redirect(location: str, redirect_uri: str | None = None) -> Response:
    return RedirectResponse(
        location, status_code=303, headers=pages.headers(redirect_uri)
    )


def _expired() -> Response:
    return pages.page(SIGN_IN, pages.message(EXPIRED), status=400)


def _target(tx: LoginTransaction) -> str | None:
    return tx.request.redirect_uri if tx.request else None


def _client_name(tx: LoginTransaction) -> str:
    if tx.request is not None and tx.request.client_id == WEB_CLIENT_ID:
        return "trustloop on the web"
    return "the trustloop command line"
