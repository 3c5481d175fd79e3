"""The demo clinician's hands on the IdP's login pages (local profile only).

:func:`pass_login` starts on the login page (``#username``, ``#password``) and
passes the second factor: a TOTP code computed from the demo secret
(``demo-users.json``) or, when every code of the current window was already
used (the IdP accepts each code once: RFC 6238 §5.2), a push that the scripted
device approves on the authenticator, as :mod:`.approve_cmd` does. It answers the
IdP's redirect after the second factor.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin

import anyio
import httpx
import pyotp

from trustloop.cli.browser import Browser, BrowserError

PUSH_WAIT_S = 20.0
_used_lock = threading.Lock()
_used_steps: dict[tuple[str, str], set[int]] = {}


@dataclass(frozen=True)
class DemoCredentials:
    """What the scripted clinician types (never in a repr)."""

    issuer: str
    username: str
    password: str = field(repr=False)
    totp_secret: str = field(repr=False)


async def pass_login(browser: Browser, creds: DemoCredentials) -> httpx.Response:
    """Password, then the second factor; the IdP's redirect after it."""
    response = await browser.submit(
        "username", {"username": creds.username, "password": creds.password}
    )
    response = await browser.follow(response)
    if not browser.has("otp"):
        raise BrowserError(f"sign-in refused (HTTP {response.status_code})")

    code = _unused_code(creds)
    if code is not None:
        response = await browser.submit("otp", {"otp": code})
        if response.status_code == 303:
            return response
    return await _push(browser, creds)


async def _push(browser: Browser, creds: DemoCredentials) -> httpx.Response:
    """Ask for a push, approve it as the device would, wait for the redirect."""
    response = await browser.submit("use-push", {})
    waiting = urljoin(browser.url, response.headers.get("location", ""))
    answer = {
        "username": creds.username,
        "password": creds.password,
        "decision": "approve",
    }
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as device:
        approved = await device.post(
            f"{creds.issuer}/authenticator/answers", json=answer
        )
    # 404: nothing pending, e.g. TRUSTLOOP_STEP_UP_AUTO answered it already.
    if approved.status_code not in (200, 404):
        raise BrowserError("the login push could not be approved")
    with anyio.fail_after(PUSH_WAIT_S):
        while True:
            response = await browser.open(waiting)
            if response.status_code == 303:
                return response
            if browser.has("otp"):  # back on the second factor: it expired
                raise BrowserError("the login push expired")
            await anyio.sleep(0.2)


def _unused_code(creds: DemoCredentials) -> str | None:
    """A code for a time step this process has not used yet (now, next, previous)."""
    totp = pyotp.TOTP(creds.totp_secret)
    now = totp.timecode(time.time())
    with _used_lock:
        used = _used_steps.setdefault((creds.issuer, creds.username), set())
        used.difference_update({s for s in used if s < now - 1})
        for step in (now, now + 1, now - 1):
            if step not in used:
                used.add(step)
                return totp.generate_otp(step)
    return None
