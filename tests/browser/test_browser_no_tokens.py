"""No token ever reaches the browser: not its cookies, storage, URLs or pages.

The app runs in this process (``inproc_app``) so the test knows every access,
refresh and ID token its session held, including the ones a refresh replaced.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from browserkit import Clinic, InProcessApp, Patient
    from playwright.sync_api import Page, Response

    from trustloop.app.oidc import Tokens

pytestmark = pytest.mark.browser

STORAGE = """() => JSON.stringify([
  Object.entries(window.localStorage), Object.entries(window.sessionStorage)])"""


def held_tokens(app: InProcessApp) -> Tokens:
    [session] = [s for s in list(app.store._sessions.values()) if s.tokens]
    assert session.tokens is not None
    return session.tokens


def test_no_access_or_refresh_token_reaches_cookies_storage_urls_or_html(
    clinic: Clinic, inproc_app: InProcessApp, open_patient: Patient
) -> None:
    context = clinic.context(phone=False)
    urls: list[str] = []
    bodies: list[str] = []
    context.on("request", lambda request: urls.append(request.url))
    context.on("response", lambda response: bodies.append(_body(response)))
    page = context.new_page()
    clinic.sign_in(page, "achen")
    first = held_tokens(inproc_app)

    clinic.ask(page, f"show me {open_patient.name}'s chart")
    clinic.wait_answered(page)
    # Near expiry: the next question makes the app refresh (the refresh rotates).
    session = next(s for s in inproc_app.store._sessions.values() if s.tokens)
    session.tokens = replace(first, expires_at=time.time() + 30)
    clinic.ask(page, "list my patients")
    clinic.wait_answered(page)
    second = held_tokens(inproc_app)
    assert second.access_token != first.access_token  # a refresh happened

    seen = _everything_the_browser_holds(page, urls, bodies)
    secrets: dict[str, list[str | None]] = {
        "access token": [first.access_token, second.access_token],
        "refresh token": [first.refresh_token, second.refresh_token],
        "ID token": [first.id_token, second.id_token],
    }
    for kind, values in secrets.items():
        for value in values:
            assert value
            assert value not in seen, f"the {kind} reached the browser"
    assert len(urls) > 10  # the IdP's pages, the app, its API and stream
    assert clinic.screenshot(page, "no-tokens").exists()
    context.close()


def _everything_the_browser_holds(
    page: Page, urls: list[str], bodies: list[str]
) -> str:
    cookies = [f"{c['name']}={c['value']}" for c in page.context.cookies()]
    storage = [page.evaluate(STORAGE)]
    for origin in {u.split("/", 3)[2] for u in urls if u.startswith("http")}:
        other = page.context.new_page()
        other.goto(f"http://{origin}/healthz")  # any page of that origin
        storage.append(other.evaluate(STORAGE))
        other.close()
    html = [page.content()]
    return "\n".join([*cookies, *storage, *urls, *html, *bodies])


def _body(response: Response) -> str:
    try:
        return response.text()
    except Exception:  # noqa: BLE001 - redirects and aborted streams have none
        return ""
