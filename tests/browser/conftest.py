"""The whole stack, the web app included, and a headless Chromium to drive it.

``stack`` starts every part as its own process (as ``trustloop up`` does);
``clinic`` is a fresh view of it per test whose screenshots go to the test's own
``tmp_path``; ``inproc_app`` swaps the app process for the same app served in
this process, so a test can read the tokens its sessions hold (and look for them
everywhere the browser keeps anything).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from browserkit import (
    CHROMIUM,
    Clinic,
    InProcessApp,
    Patient,
    launch,
    serve_app_here,
)
from playwright.sync_api import sync_playwright
from stackkit import running_stack

from trustloop.devstack.stack import Stack

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from playwright.sync_api import Browser

ACHEN = "clin-achen"


@pytest.fixture(scope="session")
def stack(pg_state_dir_factory: Callable[[str], Path]) -> Iterator[Stack]:
    with running_stack(pg_state_dir_factory("browser")) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one module: Playwright's sync API holds the thread's event
    loop while it runs, so it must be gone before any asyncio test starts."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests drive Debian's Chromium: install {CHROMIUM}")
    with sync_playwright() as playwright:
        chromium = launch(playwright.chromium)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def used_codes() -> set[tuple[str, str]]:
    """TOTP codes already spent this session (the IdP takes each once)."""
    return set()


@pytest.fixture
def clinic(
    stack: Stack, browser: Browser, tmp_path: Path, used_codes: set[tuple[str, str]]
) -> Clinic:
    return Clinic(stack.settings, browser, tmp_path, used_codes)


def _achen_patient(stack: Stack, *, sensitive: bool) -> Patient:
    assert stack.cluster is not None
    with psycopg.connect(stack.cluster.admin_conninfo()) as conn:
        row = conn.execute(
            "select p.id, p.name from clinical.patients p "
            "join clinical.care_team_members m on m.patient_id = p.id "
            "where m.clinician_sub = %s and p.sensitive = %s order by p.name limit 1",
            (ACHEN, sensitive),
        ).fetchone()
    assert row is not None, "the demo data has no such patient for achen"
    return Patient(str(row[0]), str(row[1]))


@pytest.fixture(scope="session")
def open_patient(stack: Stack) -> Patient:
    """A patient on achen's care team who needs no step-up."""
    return _achen_patient(stack, sensitive=False)


@pytest.fixture(scope="session")
def restricted_patient(stack: Stack) -> Patient:
    """A sensitive patient on achen's care team: reading needs a step-up."""
    return _achen_patient(stack, sensitive=True)


@pytest.fixture
def inproc_app(stack: Stack) -> Iterator[InProcessApp]:
    """The app served from this process on the stack's app port, then put back."""
    stack.stop_part("app")
    try:
        with serve_app_here(stack.settings) as app:
            yield app
    finally:
        stack.start_part("app")
