"""A clinician's session in Chromium: sign in with password and TOTP, ask, sign out.

Phone-sized window, keyboard only where a clinician would type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
from playwright.sync_api import expect

if TYPE_CHECKING:
    from browserkit import Clinic, InProcessApp, Patient

pytestmark = pytest.mark.browser

STREAM_PROBE = """() => {
  window.__pieces = [];
  new MutationObserver((records) => {
    for (const r of records) {
      for (const n of r.addedNodes) {
        if (n.nodeType === Node.TEXT_NODE && r.target.closest('.msg.assistant'))
          window.__pieces.push(n.data.length);
      }
    }
  }).observe(document.getElementById('log'), {childList: true, subtree: true});
}"""


def test_sign_in_with_password_and_totp_keeps_the_session_in_an_httponly_cookie(
    clinic: Clinic,
) -> None:
    context = clinic.context()
    page = context.new_page()

    clinic.sign_in(page, "achen")

    expect(page.locator("#user")).to_have_text("Dr. Amelia Chen (achen)")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    [cookie] = [c for c in context.cookies() if c["name"] == "trustloop_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie").find("trustloop_session") == -1
    assert clinic.screenshot(page, "signed-in").exists()
    context.close()


def test_a_chart_streams_into_the_page_and_the_call_shows_in_activity(
    clinic: Clinic, open_patient: Patient
) -> None:
    context = clinic.context()
    page = context.new_page()
    clinic.sign_in(page, "achen")
    page.evaluate(STREAM_PROBE)

    with page.expect_response("**/api/chat") as chat:
        clinic.ask(page, f"show me {open_patient.name}'s chart")
    text = clinic.wait_answered(page)

    assert chat.value.headers["content-type"].startswith("text/event-stream")
    pieces = page.evaluate("window.__pieces")
    assert len(pieces) > 2, "the answer arrived in one piece, not streamed"
    assert pieces == sorted(pieces)  # each piece extends the text so far
    assert open_patient.id in text
    entry = page.locator("#activity li").last
    expect(entry).to_contain_text("read_patient_record")
    expect(entry).to_contain_text("allowed")
    expect(entry).to_contain_text("OBO jti:")
    assert clinic.screenshot(page, "chart-streamed").exists()
    context.close()


def test_typing_before_signing_in_says_to_sign_in(clinic: Clinic) -> None:
    context = clinic.context()
    page = context.new_page()
    page.goto(clinic.app_url)

    clinic.ask(page, "list my patients")

    expect(page.locator("#notice")).to_contain_text("Sign in to ask a question.")
    expect(page.locator("#notice").get_by_role("link", name="Sign in")).to_be_visible()
    expect(page.locator(".msg.error")).to_have_count(1)
    assert "Traceback" not in page.content()
    assert clinic.screenshot(page, "typed-before-sign-in").exists()
    context.close()


def test_sign_out_revokes_the_sign_in_at_the_idp(
    clinic: Clinic, inproc_app: InProcessApp
) -> None:
    context = clinic.context()
    page = context.new_page()
    clinic.sign_in(page, "achen")
    [session] = [s for s in list(inproc_app.store._sessions.values()) if s.tokens]
    assert session.tokens is not None
    refresh_token = session.tokens.refresh_token

    page.get_by_role("button", name="Sign out").click()

    expect(page.locator("#notice")).to_contain_text("You are signed out")
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    assert [c for c in context.cookies() if c["name"] == "trustloop_session"] == []
    refused = httpx.post(
        f"{clinic.settings.idp_issuer}/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": str(refresh_token),
            "client_id": "trustloop-web",
        },
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert clinic.screenshot(page, "signed-out").exists()
    context.close()


def test_a_follow_up_shares_the_conversation_and_a_new_one_starts_afresh(
    clinic: Clinic, open_patient: Patient
) -> None:
    context = clinic.context(phone=False)
    page = context.new_page()
    clinic.sign_in(page, "achen")
    clinic.ask(page, f"show me {open_patient.name}'s chart")
    clinic.wait_answered(page)

    clinic.ask(page, "show me this patient's chart")
    follow_up = clinic.wait_answered(page)
    assert open_patient.id in follow_up  # the runtime remembered whom we meant
    reads = page.locator("#activity li", has_text="read_patient_record")
    expect(reads).to_have_count(2)

    page.get_by_role("button", name="New conversation").click()
    expect(page.locator("#activity li")).to_have_count(0)
    clinic.ask(page, "show me this patient's chart")
    fresh = clinic.wait_answered(page)
    assert open_patient.id not in fresh  # a new conversation has no such patient
    assert clinic.screenshot(page, "new-conversation").exists()
    context.close()
