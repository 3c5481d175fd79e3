"""The page works on a phone-sized screen and from the keyboard alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

if TYPE_CHECKING:
    from browserkit import Clinic, Patient

pytestmark = pytest.mark.browser

NO_SIDEWAYS_SCROLL = "() => document.scrollingElement.scrollWidth <= window.innerWidth"


def test_a_phone_sized_page_needs_no_sideways_scrolling(
    clinic: Clinic, open_patient: Patient
) -> None:
    context = clinic.context(phone=True)
    page = context.new_page()
    page.goto(clinic.app_url)
    assert page.evaluate(NO_SIDEWAYS_SCROLL)

    clinic.sign_in(page, "achen")
    clinic.ask(page, f"show me {open_patient.name}'s chart")
    clinic.wait_answered(page)

    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    box = page.locator("#send").bounding_box()
    assert box is not None
    assert box["height"] >= 44  # a touch target a finger can hit
    assert clinic.screenshot(page, "phone").exists()
    context.close()


def test_the_keyboard_reaches_sign_in_the_question_and_send_in_order(
    clinic: Clinic,
) -> None:
    context = clinic.context(phone=False)
    page = context.new_page()
    page.goto(clinic.app_url)
    expect(page.locator("#sign-in")).to_be_visible()

    order = []
    for _ in range(4):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id"))

    assert order[:3] == ["sign-in", "question", "send"]
    page.locator("#question").focus()
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    assert page.locator("#question").input_value() == "first line\nsecond line"
    assert clinic.screenshot(page, "keyboard").exists()
    context.close()
