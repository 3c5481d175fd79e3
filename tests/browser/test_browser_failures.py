"""What the clinician sees when something is wrong: plain messages, never a trace."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from trustloop.app.chat import RUNTIME_DOWN
from trustloop.app.sessions import IDLE_TIMEOUT_S

if TYPE_CHECKING:
    from browserkit import Clinic, InProcessApp

    from trustloop.devstack.stack import Stack

pytestmark = pytest.mark.browser

EXPIRED = "Your session has expired. Sign in again to continue."


def test_an_expired_session_says_so_and_offers_to_sign_in_again(
    clinic: Clinic, inproc_app: InProcessApp
) -> None:
    context = clinic.context()
    page = context.new_page()
    clinic.sign_in(page, "achen")

    inproc_app.clock.offset += IDLE_TIMEOUT_S + 1
    clinic.ask(page, "list my patients")

    notice = page.locator("#notice")
    expect(notice).to_contain_text(EXPIRED)
    expect(notice.get_by_role("link", name="Sign in")).to_be_visible()
    expect(page.locator(".msg.error")).to_contain_text(EXPIRED)
    page.reload()
    expect(notice).to_contain_text(EXPIRED)  # the page says so on its own, too
    assert "Traceback" not in page.content()
    assert clinic.screenshot(page, "session-expired").exists()

    clinic.sign_in(page, "achen")  # and signing in again works
    expect(notice).to_be_hidden()
    context.close()


def test_a_runtime_that_is_down_is_a_clear_message(
    clinic: Clinic, stack: Stack
) -> None:
    context = clinic.context()
    page = context.new_page()
    clinic.sign_in(page, "achen")
    stack.stop_part("runtime")
    try:
        clinic.ask(page, "list my patients")
        clinic.wait_answered(page)

        expect(page.locator(".msg.error")).to_have_text(f"Problem{RUNTIME_DOWN}")
        assert "Traceback" not in page.content()
        assert clinic.screenshot(page, "runtime-down").exists()
    finally:
        stack.start_part("runtime")

    clinic.ask(page, "list my patients")  # the same conversation carries on
    clinic.wait_answered(page)
    expect(page.locator("#activity li", has_text="list_my_patients")).to_have_count(1)
    context.close()
