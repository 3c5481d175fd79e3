"""What the browser tests do in Chromium: sign in, ask, answer a push, take pictures.

Playwright drives Debian's Chromium (``/usr/bin/chromium``, headless, no browser
download). A :class:`Clinic` knows the stack's URLs and the demo clinicians'
credentials (local profile: the 0600 users file), and signs in exactly as a
clinician would: the IdP's login page, the password, then a TOTP code.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyotp
import uvicorn
from playwright.sync_api import expect

from trustloop.app.server import create_app
from trustloop.app.sessions import SessionStore
from trustloop.devstack.idp.users import demo_password, demo_totp
from trustloop.settings import bind_address

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from playwright.sync_api import (
        Browser,
        BrowserContext,
        BrowserType,
        Page,
        ViewportSize,
    )

    from trustloop.settings import Settings

CHROMIUM = "/usr/bin/chromium"
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
ANSWER_TIMEOUT_MS = 90_000
LAUNCH_ARGS = ["--no-sandbox"] if os.geteuid() == 0 else []


def launch(chromium: BrowserType) -> Browser:
    """Headless Debian Chromium; nothing is downloaded."""
    return chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)


@dataclass
class Clinic:
    """The stack as a clinician's browser sees it."""

    settings: Settings
    browser: Browser
    output: Path
    used_codes: set[tuple[str, str]] = field(default_factory=set)

    @property
    def app_url(self) -> str:
        return self.settings.app_url

    @property
    def authenticator_url(self) -> str:
        return f"{self.settings.idp_issuer}/authenticator"

    def context(self, *, phone: bool = True) -> BrowserContext:
        """A fresh browser profile (cookies, storage), phone-sized by default."""
        return self.browser.new_context(viewport=PHONE if phone else DESKTOP)

    def screenshot(self, page: Page, name: str) -> Path:
        path = self.output / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    # -- sign-in -------------------------------------------------------------------

    def totp_code(self, username: str) -> str:
        """A code the IdP has not seen yet (each is single use; one step of drift)."""
        totp = pyotp.TOTP(demo_totp(self.settings.state_dir, username))
        for _ in range(3):
            now = time.time()
            for at in (now, now + 30, now - 30):
                code = totp.at(at)
                if (username, code) not in self.used_codes:
                    self.used_codes.add((username, code))
                    return code
            time.sleep(30 - time.time() % 30 + 0.5)
        raise RuntimeError("no unused TOTP code")

    def sign_in(self, page: Page, username: str) -> None:
        """From the app's page: Sign in, password, TOTP, and back signed in."""
        page.goto(self.app_url)
        page.locator("#sign-in").click()
        page.locator("#username").fill(username)
        page.locator("#password").fill(demo_password(self.settings.state_dir, username))
        page.locator("#password").press("Enter")
        page.locator("#otp").fill(self.totp_code(username))
        page.locator("#otp").press("Enter")
        page.wait_for_url(f"{self.app_url}/")
        expect(page.locator("#user")).to_contain_text(f"({username})")

    # -- asking --------------------------------------------------------------------

    def ask(self, page: Page, question: str) -> None:
        """Type the question and press Enter (keyboard only)."""
        page.locator("#question").fill(question)
        page.locator("#question").press("Enter")

    def wait_answered(self, page: Page) -> str:
        """The last answer's text once the Send button is enabled again."""
        expect(page.locator("#send")).to_be_enabled(timeout=ANSWER_TIMEOUT_MS)
        answers = page.locator(".msg.assistant .text")
        return answers.last.inner_text() if answers.count() else ""

    # -- the authenticator, in a second tab -----------------------------------------

    def answer_push(
        self, context: BrowserContext, username: str, *, approve: bool
    ) -> tuple[Page, str]:
        """Open the authenticator in a new tab, sign in, answer the pending push.

        Returns the tab and the push's message as the authenticator showed it.
        """
        tab = context.new_page()
        tab.goto(self.authenticator_url)
        tab.locator("input[name=username]").fill(username)
        password = demo_password(self.settings.state_dir, username)
        tab.locator("input[name=password]").fill(password)
        tab.get_by_role("button", name="Sign in").click()
        button = tab.get_by_role("button", name="Approve" if approve else "Deny")
        deadline = time.monotonic() + 30
        while button.count() == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
            tab.reload()
        message = tab.locator(".push p").first.inner_text()
        button.first.click()
        return tab, message


@dataclass(frozen=True)
class Patient:
    """A demo patient the tests ask about."""

    id: str
    name: str


class ShiftedClock:
    """Wall time plus an offset a test can move (sessions expire without sleeping)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class InProcessApp:
    """The real app served from the test process: its sessions are readable."""

    store: SessionStore
    clock: ShiftedClock


@contextmanager
def serve_app_here(settings: Settings) -> Iterator[InProcessApp]:
    """Serve ``create_app(settings)`` on ``settings.app_url`` from this process."""
    clock = ShiftedClock()
    store = SessionStore(clock=clock)
    app = create_app(settings, store=store)
    host, port = bind_address(settings.app_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        yield InProcessApp(store, clock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
