"""A note written from the chat page after the clinician consents on the device."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

if TYPE_CHECKING:
    from browserkit import Clinic, Patient

pytestmark = pytest.mark.browser

NOTE = "Seen in clinic today; blood pressure stable, continue current plan."


def test_a_note_is_written_after_consent_on_the_authenticator(
    clinic: Clinic, open_patient: Patient
) -> None:
    context = clinic.context()
    page = context.new_page()
    clinic.sign_in(page, "achen")

    clinic.ask(page, f"add a note to {open_patient.name}'s chart: {NOTE}")
    expect(page.locator("#waiting")).to_be_visible(timeout=30_000)
    clinic.screenshot(page, "waiting-for-consent")
    tab, message = clinic.answer_push(context, "achen", approve=True)
    text = clinic.wait_answered(page)

    assert NOTE in message  # the push showed the exact change consented to
    assert open_patient.id in message
    write = page.locator("#activity li", has_text="write_clinical_note").last
    expect(write).to_contain_text("allowed")
    assert "note" in text.lower()
    expect(page.locator(".status-line.refused")).to_have_count(0)
    clinic.screenshot(tab, "authenticator-consent")
    assert clinic.screenshot(page, "note-written").exists()
    context.close()
