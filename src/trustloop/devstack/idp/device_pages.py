"""The device page (RFC 8628 §3.3): where a clinician approves a CLI sign-in.

::

    GET  /device[?user_code=XXXX-XXXX]  the code form; a valid code starts a login
    GET  /device/confirm?tx=…           after password and second factor: Approve/Deny
    POST /device/confirm                the answer

A login started here is the same login as ``/oauth2/authorize``'s
(:class:`.LoginFlow`), carrying the user code instead of an authorization
request. §5.1 asks the server to limit user code guessing: every wrong code counts
against the caller's address, and after :data:`MAX_WRONG_CODES` in
:data:`WRONG_CODE_WINDOW_S` the page answers 429 without looking codes up (with
20^8 codes and 10 guesses per 10 minutes, guessing a live code is hopeless).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from starlette.responses import Response

from trustloop.devstack.idp import login_pages as pages
from trustloop.devstack.idp.device import display_user_code
from trustloop.devstack.idp.login import read_form, set_browser_cookie
from trustloop.devstack.idp.login_state import BROWSER_COOKIE, new_browser_id

if TYPE_CHECKING:
    from starlette.requests import Request

    from trustloop.devstack.idp.device import DeviceCodes
    from trustloop.devstack.idp.login import LoginFlow
    from trustloop.devstack.idp.sessions import SignInSessions
    from trustloop.devstack.jwtcheck import Clock

MAX_WRONG_CODES = 10
WRONG_CODE_WINDOW_S = 600
TITLE = "Sign in the command line"


class WrongCodeLimiter:
    """Counts wrong user codes per caller in a sliding window."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._wrong: dict[str, list[float]] = {}

    def blocked(self, caller: str) -> bool:
        with self._lock:
            return len(self._recent(caller)) >= MAX_WRONG_CODES

    def wrong(self, caller: str) -> None:
        with self._lock:
            self._wrong[caller] = [*self._recent(caller), self._clock()]

    def _recent(self, caller: str) -> list[float]:
        since = self._clock() - WRONG_CODE_WINDOW_S
        return [t for t in self._wrong.get(caller, []) if t > since]


class DevicePages:
    """The handlers of ``/device``."""

    def __init__(
        self,
        *,
        login: LoginFlow,
        codes: DeviceCodes,
        sessions: SignInSessions,
        limiter: WrongCodeLimiter,
    ) -> None:
        self._login = login
        self._codes = codes
        self._sessions = sessions
        self._limiter = limiter

    async def start(self, request: Request) -> Response:
        typed = request.query_params.get("user_code")
        if typed is None:
            return pages.page(TITLE, pages.user_code_form())
        caller = request.client.host if request.client else "unknown"
        if self._limiter.blocked(caller):
            text = "Too many wrong codes. Wait a few minutes and try again."
            return pages.page(TITLE, pages.user_code_form(error=text), status=429)

        entry = self._codes.pending(typed)
        if entry is None:
            self._limiter.wrong(caller)
            error = "That code is wrong or has expired."
            return pages.page(TITLE, pages.user_code_form(error=error), status=400)
        browser = request.cookies.get(BROWSER_COOKIE) or new_browser_id()
        tx = self._login.transactions.start(browser, user_code=entry.user_code)
        response = self._login.login_page(tx)
        set_browser_cookie(response, browser)
        return response

    async def confirm_page(self, request: Request) -> Response:
        tx = self._login.transaction(request, tx_id=request.query_params.get("tx", ""))
        if tx is None or tx.amr is None or tx.clinician is None or not tx.user_code:
            return _expired()
        body = pages.device_confirm(
            tx.id, tx.csrf, tx.clinician.name, display_user_code(tx.user_code)
        )
        return pages.page(TITLE, body)

    async def confirm(self, request: Request) -> Response:
        form = await read_form(request)
        tx = self._login.transaction(request, form)
        if tx is None or tx.amr is None or tx.clinician is None or not tx.user_code:
            return _expired()
        self._login.transactions.finish(tx)
        entry = self._codes.pending(tx.user_code)
        if entry is None:
            return _expired()

        if form.get("decision") != "approve":
            self._codes.answer(entry, None)
            return pages.page(
                TITLE, pages.message("Denied. The command line is not signed in.")
            )
        session = self._sessions.start(
            tx.clinician, client_id=entry.client_id, amr=tx.amr
        )
        self._codes.answer(entry, session)
        done = "Approved. You can close this page and return to your terminal."
        return pages.page(TITLE, pages.message(done))


def _expired() -> Response:
    text = "This sign-in has expired. Start again from your terminal."
    return pages.page(TITLE, pages.message(text), status=400)
