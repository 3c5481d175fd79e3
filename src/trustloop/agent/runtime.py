"""The agent runtime on AgentCore's HTTP contract (``POST /invocations``, ``GET /ping``).

A ``bedrock_agentcore.BedrockAgentCoreApp`` whose entrypoint validates the payload
(``{"prompt": str}``), takes the clinician's token from the request headers and
streams one fresh agent run as SSE frames (:mod:`trustloop.agent.invocation`), given
the earlier turns of the same session and clinician
(:mod:`trustloop.agent.sessions`).
``/ping`` is the SDK's: ``{"status": "Healthy", "time_of_last_update": <epoch s>}``.

Where the clinician's token arrives (DESIGN.md, "Three identities"):

- ``jwt`` invoke mode: ``Authorization: Bearer <token>`` (AgentCore forwards it when
  the runtime uses its JWT authorizer);
- ``sigv4`` invoke mode: ``Authorization`` holds the AWS signature and the token
  rides ``X-Amzn-Bedrock-AgentCore-Runtime-Custom-User-Token``.

Request errors, drawn as one tree; each is answered as a single ``{"error": ...}``
frame (HTTP 200, as AgentCore streams errors) and audited, and no agent runs::

    RequestError
    ├── InvalidRequestError    the body is not {"prompt": "<at most 4000 chars>"}
    └── SignInRequiredError    no well-formed clinician token on the request
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from bedrock_agentcore.runtime import (
    BedrockAgentCoreApp,
    BedrockAgentCoreContext,
    RequestContext,
)

from trustloop.agent.invocation import Frame, Invocation, UserToken
from trustloop.agent.sessions import ConversationMemory
from trustloop.audit.chain import AuditLog
from trustloop.body_limit import BodyLimit
from trustloop.settings import Settings, bind_address

if TYPE_CHECKING:
    from starlette.applications import Starlette

MAX_PROMPT_CHARS = 4000
USER_TOKEN_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Custom-User-Token"  # noqa: S105
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_MAX_TOKEN_CHARS = 16384
_MAX_ID_CHARS = 256


class RequestError(Exception):
    """A request the runtime refuses before running an agent; ``str`` is the frame."""

    reason = "bad_request"


class InvalidRequestError(RequestError):
    reason = "invalid_request"


class SignInRequiredError(RequestError):
    reason = "sign_in_required"

    def __init__(self) -> None:
        super().__init__("sign in required")


def read_prompt(payload: object) -> str:
    """The clinician's question from ``{"prompt": str}``; other keys are ignored."""
    if not isinstance(payload, dict) or not isinstance(payload.get("prompt"), str):
        raise InvalidRequestError('invalid request: expected {"prompt": "<question>"}')

    prompt: str = payload["prompt"]
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidRequestError(
            f"invalid request: the prompt is longer than {MAX_PROMPT_CHARS} characters"
        )
    return prompt


def read_user_token(headers: Mapping[str, str] | None) -> UserToken:
    """The clinician's token: a Bearer ``Authorization`` (jwt) or the custom header."""
    lowered = {name.lower(): value for name, value in (headers or {}).items()}

    scheme, _, credentials = lowered.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return UserToken(_well_formed(credentials), "jwt")

    custom = lowered.get(USER_TOKEN_HEADER.lower(), "").strip()
    if custom:
        if custom[:7].lower() == "bearer ":
            custom = custom[7:]
        return UserToken(_well_formed(custom), "sigv4")
    raise SignInRequiredError()


def create_app(settings: Settings | None = None) -> BedrockAgentCoreApp:
    """The runtime's ASGI app; serve it with ``app.run`` or any ASGI server."""
    settings = settings or Settings()
    if settings.model_transcript is not None and settings.profile != "local":
        raise RuntimeError(
            "model_transcript is a local test capture of chart data and refuses to "
            f"run with profile {settings.profile!r}"
        )

    audit = AuditLog(settings.audit_dir / "runtime.jsonl", "runtime")
    memory = ConversationMemory.for_settings(settings)
    app = BedrockAgentCoreApp(lifespan=_preload_agent_stack)
    app.add_middleware(BodyLimit)  # before the SDK reads the body

    @app.entrypoint
    async def invocations(
        payload: Any, context: RequestContext
    ) -> AsyncIterator[Frame]:
        invocation = Invocation(
            settings,
            audit,
            session_id=_short(context.session_id),
            request_id=_short(BedrockAgentCoreContext.get_request_id()),
            memory=memory,
        )
        try:
            prompt = read_prompt(payload)
            token = read_user_token(context.request_headers)
        except RequestError as exc:
            invocation.reject(exc.reason)
            yield {"error": str(exc)}
            return

        async for frame in invocation.frames(prompt, token):
            yield frame

    return app


def main() -> None:
    """``python -m trustloop.agent``: serve on ``settings.runtime_url``."""
    from trustloop import logging as trustloop_logging

    log = trustloop_logging.configure("runtime")
    settings = Settings()
    host, port = bind_address(settings.runtime_url)
    app = create_app(settings)

    # The SDK logs every request at INFO; invocation_finished already says it all.
    logging.getLogger("bedrock_agentcore.app").setLevel(logging.WARNING)
    log.info("runtime_starting", host=host, port=port, model=settings.model)
    app.run(port=port, host=host)


def _well_formed(credentials: str) -> str:
    token = credentials.strip()
    if len(token) > _MAX_TOKEN_CHARS or not _B64TOKEN.fullmatch(token):
        raise SignInRequiredError()
    return token


def _short(identifier: str | None) -> str | None:
    return identifier[:_MAX_ID_CHARS] if identifier else None


@contextlib.asynccontextmanager
async def _preload_agent_stack(app: Starlette) -> AsyncIterator[None]:
    """Import Strands and build the TLS context in the background, so ``/ping``
    answers at once (~2 s import) and the first question pays for neither."""
    threading.Thread(
        target=_import_agent_stack, name="agent-preload", daemon=True
    ).start()
    yield


def _import_agent_stack() -> None:
    import strands.tools.mcp  # noqa: F401

    import trustloop.agent.offline_model  # noqa: F401
    from trustloop.agent.mcp_transport import tls_context

    tls_context()
