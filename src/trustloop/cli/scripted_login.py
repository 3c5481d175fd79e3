"""The demo clinician's hands on the IdP's login pages (local profile only).

:func:`pass_login` starts on the login page (``#username``, ``#password``) and
passes the second factor: a TOTP code computed from the demo secret
(``demo-users.json``) or, when every code of the current window was already
used (the IdP accepts each code once: RFC 6238 §5.2), a push that the scripted
device approves on the authenticator, as :mod:`.approve_cmd` does. It answers the
IdP's redirect after the second factor.

The time steps already used are recorded in ``<state>/cli/totp-steps.json``
(under a file lock), so that sign-ins from several processes (``ask`` after
``ask``) do not present a spent code: each would be a ``sign_in_failed`` line in
the IdP's audit, which a SIEM would rightly count as a failed second factor.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
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
    # Where the used time steps are shared between processes; None: this one only.
    steps_file: Path | None = None


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
    with _used_lock, _used_steps_of(creds) as used:
        used.difference_update({s for s in used if s < now - 1})
        for step in (now, now + 1, now - 1):
            if step not in used:
                used.add(step)
                return totp.generate_otp(step)
    return None


@contextlib.contextmanager
def _used_steps_of(creds: DemoCredentials) -> Iterator[set[int]]:
    """The steps used for this clinician, read and written back under a lock."""
    key = f"{creds.issuer} {creds.username}"
    if creds.steps_file is None:
        yield _used_steps.setdefault((creds.issuer, creds.username), set())
        return
    creds.steps_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(creds.steps_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "r+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            record = _read_steps(fh.read())
        except ValueError:
            record = {}
        used = set(record.get(key, []))
        yield used
        record[key] = sorted(used)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(record))


def _read_steps(text: str) -> dict[str, list[int]]:
    if not text.strip():
        return {}
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return {
        str(k): [int(s) for s in v if isinstance(s, int)]
        for k, v in data.items()
        if isinstance(v, list)
    }
