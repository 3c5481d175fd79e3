"""The demo authenticator: where a clinician approves or denies a push (local only).

``GET /authenticator`` is a small mobile-sized page: a demo password sign-in,
then the clinician's pending pushes (step-up and consent pushes of
:mod:`.step_up`, and login pushes of :mod:`.login_push`, oldest first), each with
Approve and Deny buttons (POST
forms; the sign-in is an in-memory cookie, ``HttpOnly``, ``SameSite=Strict``).
``POST /authenticator/answers`` is its JSON counterpart for ``trustloop approve``:
``{"username", "password", "decision": "approve"|"deny", "transaction_id"?}``
answers that push, or the clinician's oldest pending one; 404 when none.

A real deployment uses IBM Verify's mobile app; this is a stand-in that signs the
clinician in with the demo password and lives in the local profile only.
"""

from __future__ import annotations

import contextlib
import html
import json
import secrets
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from trustloop.devstack.idp.errors import NO_STORE
from trustloop.devstack.idp.step_up import NotFoundError

if TYPE_CHECKING:
    from starlette.requests import Request

    from trustloop.devstack.idp.login_push import LoginPush, LoginPushes
    from trustloop.devstack.idp.step_up import Push, StepUp
    from trustloop.devstack.idp.users import DemoUsers

COOKIE = "trustloop_authenticator"
# The Approve button must not be clickable from inside another page: the
# authenticator's cookie is SameSite=Strict, but every port of a host is the same
# site, so any page served from it could frame this one.
_HEADERS = {
    **NO_STORE,
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trustloop authenticator</title>
<style>body{{font-family:sans-serif;max-width:380px;margin:1em auto;padding:0 1em}}
.push{{border:1px solid #ccc;border-radius:8px;padding:1em;margin:1em 0}}
button{{font-size:1.1em;padding:.5em 1em;margin-right:.5em}}</style>
</head><body><h1>Authenticator</h1>{body}</body></html>"""
_SIGN_IN = """<form method="post" action="/authenticator">
<p><label>Username <input name="username" autocomplete="username"></label></p>
<p><label>Password <input name="password" type="password"></label></p>
<p><button type="submit">Sign in</button></p></form>"""
_PUSH = """<div class="push"><p>{message}</p>
<form method="post" action="/authenticator/answer">
<input type="hidden" name="transaction_id" value="{id}">
<button name="decision" value="approve">Approve</button>
<button name="decision" value="deny">Deny</button></form></div>"""


class Authenticator:
    """The page and the JSON endpoint over :class:`~.step_up.StepUp`."""

    def __init__(
        self,
        step_up: StepUp,
        users: DemoUsers,
        login_pushes: LoginPushes | None = None,
    ) -> None:
        self._step_up = step_up
        self._users = users
        self._login_pushes = login_pushes
        self._sessions: dict[str, str] = {}  # cookie value -> clinician sub

    def _pending(self, sub: str) -> list[Push | LoginPush]:
        """Every pending push of ``sub``, step-up and login alike, oldest first."""
        pushes: list[Push | LoginPush] = [*self._step_up.pending(sub)]
        if self._login_pushes is not None:
            pushes.extend(self._login_pushes.pending(sub))
        return sorted(pushes, key=lambda p: p.created)

    def _answer(
        self, sub: str, transaction_id: str | None, *, approve: bool
    ) -> Push | LoginPush:
        """Answer that push, or the oldest pending one; NotFoundError if none."""
        if transaction_id is None:
            oldest = next(iter(self._pending(sub)), None)
            if oldest is None:
                raise NotFoundError
            transaction_id = oldest.id
        if self._login_pushes is not None:
            with contextlib.suppress(NotFoundError):
                return self._login_pushes.answer(sub, transaction_id, approve=approve)
        return self._step_up.answer(sub, transaction_id, approve=approve)

    async def page(self, request: Request) -> Response:
        sub = self._sessions.get(request.cookies.get(COOKIE, ""))
        if sub is None:
            return _html(_SIGN_IN)
        pushes = self._pending(sub)
        items = [
            _PUSH.format(message=html.escape(p.message), id=html.escape(p.id))
            for p in pushes
        ]
        return _html("".join(items) or "<p>No pending requests.</p>")

    async def sign_in(self, request: Request) -> Response:
        form = await _form(request)
        username, password = (
            str(form.get("username", "")),
            str(form.get("password", "")),
        )
        clinician = self._users.authenticate(username, password)
        if clinician is None:
            return _html("<p>Sign-in failed.</p>" + _SIGN_IN, status=401)
        session = secrets.token_urlsafe(32)
        self._sessions[session] = clinician.sub
        response = RedirectResponse("/authenticator", status_code=303)
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict")
        return response

    async def answer_form(self, request: Request) -> Response:
        sub = self._sessions.get(request.cookies.get(COOKIE, ""))
        if sub is None:
            return RedirectResponse("/authenticator", status_code=303)
        form = await _form(request)
        approve = form.get("decision") == "approve"
        # Answered or expired meanwhile: the list shows what is left.
        with contextlib.suppress(NotFoundError):
            self._answer(sub, str(form.get("transaction_id", "")), approve=approve)
        return RedirectResponse("/authenticator", status_code=303)

    async def answer_json(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict) or body.get("decision") not in (
            "approve",
            "deny",
        ):
            return _error(400, "invalid_request", "decision must be approve or deny")
        clinician = self._users.authenticate(
            str(body.get("username", "")), str(body.get("password", ""))
        )
        if clinician is None:
            return _error(401, "invalid_client", "sign-in failed")
        transaction = body.get("transaction_id")
        try:
            push = self._answer(
                clinician.sub,
                transaction if isinstance(transaction, str) else None,
                approve=body["decision"] == "approve",
            )
        except NotFoundError:
            return _error(404, "not_found", "no pending push")
        answer = {"id": push.id, "state": push.state, "message": push.message}
        return JSONResponse(answer, headers=NO_STORE)


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body())[:4096]
    return dict(parse_qsl(body.decode(errors="replace")))


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(body=body), status_code=status, headers=_HEADERS)


def _error(status: int, error: str, description: str) -> JSONResponse:
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status_code=status, headers=NO_STORE)
