"""Sign a demo clinician in and ask the runtime one question (local profile).

:func:`sign_in` signs in the way the web app does: the OIDC authorization code
flow with PKCE (S256) against the IdP's login pages, password then a TOTP code
(or a push the scripted device approves), as the public client
``trustloop-cli`` with a loopback redirect URI (RFC 8252 §7.3), which nothing
needs to listen on: the scripted browser reads the code from the redirect.

The access token lives in this process only: it goes to the runtime on the
``Authorization`` header and is never printed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from trustloop.app.runtime_client import invoke
from trustloop.cli.browser import Browser, BrowserError, new_http
from trustloop.cli.scripted_login import DemoCredentials, pass_login
from trustloop.identity.oauth import CLI_CLIENT_ID, IdpClient, OAuthError
from trustloop.identity.sign_in import SignInClient, SignInTokens, new_pkce, new_state
from trustloop.settings import Settings, require_local

# No listener is needed: the scripted browser stops at the redirect.
LOOPBACK_REDIRECT = "http://127.0.0.1:53682/callback"


@dataclass
class Answer:
    """What one question produced: the streamed text and the tool calls made."""

    text: str = ""
    tools: list[dict[str, object]] = field(default_factory=list)

    @property
    def jtis(self) -> list[str]:
        return [str(t["obo_jti"]) for t in self.tools if t.get("obo_jti")]


def sign_in(settings: Settings, username: str) -> str:
    """A fresh access token for a demo clinician (code + PKCE + TOTP, local only)."""
    return asyncio.run(sign_in_tokens(settings, username)).access_token


async def sign_in_tokens(settings: Settings, username: str) -> SignInTokens:
    """:func:`sign_in`'s whole token answer (access, refresh and ID tokens)."""
    creds = demo_credentials(settings, username)
    pkce, state = new_pkce(), new_state()
    async with new_http() as http:
        client = SignInClient(IdpClient(settings.idp_issuer, http), CLI_CLIENT_ID)
        url = await client.authorization_url(
            redirect_uri=LOOPBACK_REDIRECT,
            state=state,
            pkce=pkce,
            nonce=secrets.token_urlsafe(16),
        )
        browser = Browser(http)
        if (await browser.open(url)).status_code != 200:
            raise BrowserError("the IdP did not show its login page")
        done = await pass_login(browser, creds)
        code = _code(done.headers.get("location", ""), state, settings.idp_issuer)
        return await client.exchange_code(
            code, redirect_uri=LOOPBACK_REDIRECT, pkce=pkce
        )


_FACTORS = {"pwd": "password", "otp": "TOTP code", "push": "push approval"}


def display_claims(token: str) -> dict[str, Any]:
    """A JWT's payload read without verifying it: for display only, decides nothing."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def traced(tool: dict[str, object], access_token: str) -> str:
    """The call's status and the ``jti`` that ``trustloop audit trace`` follows.

    A refused call has no OBO token: its trail hangs off the access token's
    ``jti`` (the IdP's ``exchange_denied`` names it as ``subject_jti``).
    """
    status = tool.get("status")
    if tool.get("obo_jti"):
        return f"{status}, OBO jti {tool['obo_jti']}"
    subject_jti = display_claims(access_token).get("jti") or "-"
    return f"{status}, no OBO token; access token jti {subject_jti}"


def how_signed_in(access_token: str) -> str:
    """``"password + TOTP code"`` from the token's ``amr``, for display only."""
    amr = display_claims(access_token).get("amr")
    if not isinstance(amr, list):
        return "an unknown method"
    return " + ".join(_FACTORS.get(str(m), str(m)) for m in amr)


def demo_credentials(settings: Settings, username: str) -> DemoCredentials:
    """The demo clinician's password and TOTP secret (local profile only)."""
    require_local(settings, "demo sign-in")
    # Imported here: the dev-only password store is for the local profile only.
    from trustloop.devstack.idp.users import demo_password, demo_totp

    return DemoCredentials(
        issuer=settings.idp_issuer,
        username=username,
        password=demo_password(settings.state_dir, username),
        totp_secret=demo_totp(settings.state_dir, username),
        steps_file=settings.state_dir / "cli" / "totp-steps.json",
    )


def _code(location: str, state: str, issuer: str) -> str:
    """The code from the redirect, after checking ``state`` and ``iss`` (RFC 9207)."""
    if not location.startswith(LOOPBACK_REDIRECT):
        raise BrowserError("the IdP did not redirect back to the client")
    params = parse_qs(urlsplit(location).query)
    if params.get("state") != [state] or params.get("iss") != [issuer]:
        raise BrowserError("the redirect's state or issuer is wrong")
    if "error" in params:
        raise OAuthError(params["error"][0], "sign-in refused", 400)
    code = params.get("code", [""])[0]
    if not code:
        raise BrowserError("the redirect carries no code")
    return code


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
