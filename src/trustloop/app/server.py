"""The web app: a chat page, its JSON/SSE API and the sign-in routes (Starlette).

Routes::

    GET  /                      the page (static HTML, CSS and one JS file)
    GET  /static/...            those files
    GET  /healthz               readiness: {"status": "ok"}
    GET  /auth/login            -> the IdP's authorization endpoint
    GET  /auth/callback         <- the IdP's redirect; starts the session
    POST /auth/logout           revokes at the IdP, ends the session
    GET  /api/session           who is signed in, the current conversation
    POST /api/conversations     a new conversation (a new runtime session id)
    POST /api/chat              {"conversation_id", "message"} -> SSE (chat.py)
    GET  /api/activity?conversation_id=...   the conversation's tool calls

Every answer carries a strict Content-Security-Policy (no inline script, nothing
from another origin); ``/api`` and ``/auth`` answers are ``no-store``. Tokens
never leave the server: the page sees names, ids and answer text only.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from trustloop.app import chat
from trustloop.app.auth import WRONG_ORIGIN, Auth, problem, same_origin
from trustloop.app.invoke import RuntimeInvoker, SigV4Signer
from trustloop.app.oidc import OidcClient
from trustloop.app.sessions import CookiePolicy, SessionStore
from trustloop.settings import Settings

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"
# A question is at most chat.MAX_QUESTION_CHARS characters, up to 4 bytes each.
MAX_BODY_BYTES = 4 * chat.MAX_QUESTION_CHARS + 1024
# The runtime may wait a minute for a step-up approval before it answers again.
HTTP_TIMEOUT = httpx.Timeout(10.0, read=180.0)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # same-origin: a form POST keeps its Origin; nothing leaks to other sites.
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")

log = structlog.get_logger("trustloop.app")


class SecurityHeaders:
    """ASGI middleware: the security headers on every answer, streaming included;
    served over HTTPS, HSTS too (no first request may be downgraded to HTTP)."""

    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self.app = app
        self.headers = [*SECURITY_HEADERS, *([HSTS] if https else [])]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = str(scope["path"]).startswith(("/api/", "/auth/"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(self.headers)
                if private:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    settings: Settings | None = None,
    *,
    store: SessionStore | None = None,
    clock: Callable[[], float] = time.time,
    signer: SigV4Signer | None = None,
) -> Starlette:
    """The app for ``settings``; ``store`` and ``clock`` are for tests."""
    settings = settings or Settings()
    http = httpx.AsyncClient(timeout=HTTP_TIMEOUT)
    if settings.app_invoke_mode == "sigv4" and signer is None:
        signer = SigV4Signer.from_environment()
    invoker = RuntimeInvoker(
        settings.runtime_url, http, mode=settings.app_invoke_mode, signer=signer
    )
    auth = Auth(
        oidc=OidcClient(
            settings.idp_issuer, settings.app_redirect_uri, http, clock=clock
        ),
        store=store if store is not None else SessionStore(clock=clock),
        cookies=CookiePolicy.for_url(settings.app_url),
        app_url=settings.app_url,
        clock=clock,
    )
    api = Api(auth, invoker, authenticator_url=authenticator_url(settings))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await http.aclose()

    routes = [
        Route("/", page),
        Route("/healthz", healthz),
        Route("/auth/login", auth.login),
        Route("/auth/callback", auth.callback),
        Route("/auth/logout", auth.logout, methods=["POST"]),
        Route("/api/session", api.session),
        Route("/api/conversations", api.new_conversation, methods=["POST"]),
        Route("/api/chat", api.chat, methods=["POST"]),
        Route("/api/activity", api.activity),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(SecurityHeaders, https=auth.cookies.secure)
    app.state.auth = auth
    return app


def authenticator_url(settings: Settings) -> str:
    """Where the clinician answers a push: the demo page locally; on IBM Verify,
    the Verify app on their phone (no URL to link to)."""
    if settings.profile != "local":
        return ""
    return f"{settings.idp_issuer}/authenticator"


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def capped_body(request: Request) -> bytes | None:
    """The request body, or None once it passes MAX_BODY_BYTES (not read further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class Api:
    """The page's JSON and SSE endpoints."""

    def __init__(
        self, auth: Auth, invoker: RuntimeInvoker, *, authenticator_url: str
    ) -> None:
        self.auth = auth
        self.invoker = invoker
        self.authenticator_url = authenticator_url

    async def session(self, request: Request) -> Response:
        session = self.auth.session_of(request)
        body: dict[str, Any] = {"authenticator_url": self.authenticator_url}
        if session is None or session.tokens is None:
            expired = self.auth.had_session(request) and session is None
            return JSONResponse({**body, "signed_in": False, "expired": expired})

        conversation = next(reversed(session.conversations.values()), None)
        if conversation is None:
            conversation = session.new_conversation()
        return JSONResponse(
            {
                **body,
                "signed_in": True,
                "name": session.tokens.name,
                "username": session.tokens.username,
                "conversation_id": conversation.id,
                "activity": [call.wire() for call in conversation.calls],
            }
        )

    async def new_conversation(self, request: Request) -> Response:
        if not same_origin(request):
            return problem(403, "wrong_origin", WRONG_ORIGIN)
        session = self.auth.session_of(request)
        if session is None or not session.signed_in:
            return self.auth.refusal(request)
        return JSONResponse({"conversation_id": session.new_conversation().id})

    async def activity(self, request: Request) -> Response:
        session = self.auth.session_of(request)
        if session is None or not session.signed_in:
            return self.auth.refusal(request)
        conversation = session.conversation(
            request.query_params.get("conversation_id", "")
        )
        if conversation is None:
            return problem(404, "unknown_conversation", "No such conversation.")
        return JSONResponse({"calls": [call.wire() for call in conversation.calls]})

    async def chat(self, request: Request) -> Response:
        if not same_origin(request):
            return problem(403, "wrong_origin", WRONG_ORIGIN)
        session = self.auth.session_of(request)
        if session is None or not session.signed_in:
            return self.auth.refusal(request)
        body = await capped_body(request)
        if body is None:
            return problem(413, "invalid_request", "The question is too long.")
        try:
            conversation_id, question = chat.read_question(json.loads(body))
        except (ValueError, RecursionError) as exc:  # not JSON, or QuestionError
            message = str(exc) if isinstance(exc, chat.QuestionError) else None
            return problem(400, "invalid_request", message or "Send JSON.")

        conversation = session.conversation(conversation_id)
        if conversation is None:
            return problem(
                404, "unknown_conversation", "This conversation is not known."
            )
        tokens = await self.auth.tokens_of(session)
        if tokens is None:
            return self.auth.refusal(request)

        log.info("question_asked", sub=tokens.sub, conversation_id=conversation.id)
        stream = chat.answer(
            self.invoker,
            conversation,
            question,
            access_token=tokens.access_token,
            authenticator_url=self.authenticator_url,
        )
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
