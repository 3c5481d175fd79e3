"""A restricted chart in Chromium: the page waits visibly, the clinician answers the
push on the authenticator page in a second tab, and the answer continues or stops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

if TYPE_CHECKING:
    from browserkit import Clinic, Patient
    from playwright.sync_api import BrowserContext, Page

pytestmark = pytest.mark.browser

WAIT_MS = 30_000


def ask_restricted(clinic: Clinic, patient: Patient) -> tuple[BrowserContext, Page]:
    context = clinic.context()
    page = context.new_page()
    clinic.sign_in(page, "achen")
    clinic.ask(page, f"show me {patient.name}'s chart")

    waiting = page.locator("#waiting")
    expect(waiting).to_be_visible(timeout=WAIT_MS)
    expect(waiting).to_contain_text("approv")
    link = waiting.get_by_role("link", name="Open the authenticator")
    expect(link).to_have_attribute("href", clinic.authenticator_url)
    expect(page.locator("#send")).to_be_disabled()  # the answer is still open
    return context, page


def test_an_approved_step_up_continues_the_answer(
    clinic: Clinic, restricted_patient: Patient
) -> None:
    context, page = ask_restricted(clinic, restricted_patient)
    clinic.screenshot(page, "waiting-for-approval")

    tab, message = clinic.answer_push(context, "achen", approve=True)
    clinic.screenshot(tab, "authenticator-approved")
    assert restricted_patient.id in message
    text = clinic.wait_answered(page)

    assert f"Patient/{restricted_patient.id}" in text
    expect(page.locator("#waiting")).to_be_hidden()
    read = page.locator("#activity li", has_text="read_patient_record").last
    expect(read).to_contain_text("allowed")
    assert clinic.screenshot(page, "step-up-approved").exists()
    context.close()


def test_a_denied_step_up_shows_a_plain_message_and_no_chart(
    clinic: Clinic, restricted_patient: Patient
) -> None:
    context, page = ask_restricted(clinic, restricted_patient)

    clinic.answer_push(context, "achen", approve=False)
    text = clinic.wait_answered(page)

    expect(page.locator(".status-line.refused")).to_contain_text(
        "Not allowed: read_patient_record"
    )
    assert "declined" in text
    assert "Latest observations" not in text
    read = page.locator("#activity li", has_text="read_patient_record").last
    expect(read).to_contain_text("refused")
    assert "Traceback" not in page.content()
    assert clinic.screenshot(page, "step-up-denied").exists()
    context.close()
