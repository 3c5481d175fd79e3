"""Sign a demo clinician in and ask the runtime one question (local profile).

The access token lives in this process only: it goes to the runtime on the
``Authorization`` header and is never printed.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import httpx

from trustloop.app.runtime_client import invoke
from trustloop.identity.oauth import IdpClient
from trustloop.settings import Settings, require_local


@dataclass
class Answer:
    """What one question produced: the streamed text and the tool calls made."""

    text: str = ""
    tools: list[dict[str, object]] = field(default_factory=list)

    @property
    def jtis(self) -> list[str]:
        return [str(t["obo_jti"]) for t in self.tools if t.get("obo_jti")]


def sign_in(settings: Settings, username: str) -> str:
    """A fresh access token for a demo clinician (password grant, local only)."""
    require_local(settings, "demo sign-in")
    from trustloop.devstack.idp.users import demo_password

    password = demo_password(settings.state_dir, username)

    async def grant() -> str:
        async with httpx.AsyncClient(timeout=10.0) as http:
            issued = await IdpClient(settings.idp_issuer, http).password_grant(
                username, password
            )
            return issued.access_token

    return asyncio.run(grant())


def ask(
    settings: Settings,
    access_token: str,
    question: str,
    *,
    session_id: str | None = None,
    on_text: object = None,
) -> Answer:
    """Invoke the runtime and collect the streamed answer."""
    answer = Answer()
    for frame in invoke(
        settings.runtime_url,
        question,
        access_token=access_token,
        session_id=session_id or str(uuid.uuid4()),
    ):
        kind = frame.get("type")
        if kind == "text":
            chunk = str(frame.get("text", ""))
            answer.text += chunk
            if callable(on_text):
                on_text(chunk)
        elif kind == "tool":
            answer.tools.append(frame)
    return answer
