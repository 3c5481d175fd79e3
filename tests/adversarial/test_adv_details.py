"""Hostile token exchanges against the real IdP app: what is asked for, and how.

Widened or malformed ``authorization_details``, another clinician's roster, an
audience or resource other than Vault, and polluted or oversized forms. The IdP is
the in-process lab of ``support/idp_lab.py``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

import httpx
import pytest
from adversary import ACHEN, BOKAFOR
from idp_lab import refused

if TYPE_CHECKING:
    from idp_lab import Lab

pytestmark = pytest.mark.e2e


# -- widened or malformed authorization_details --------------------------------------


def _details(lab: Lab) -> dict[str, str]:
    mine = f"Patient/{lab.mine}"
    entry = {"type": "patient_record", "actions": ["read"], "identifier": mine}

    def one(**changes: object) -> str:
        return json.dumps([{**entry, **changes}])

    return {
        "not-json": "[{",
        "json-null": "null",
        "object-not-array": json.dumps(entry),
        "empty-array": "[]",
        "two-details": json.dumps([entry, {**entry, "identifier": "Patient/x"}]),
        "same-detail-twice": json.dumps([entry, entry]),
        "string-entry": json.dumps(["patient_record"]),
        "nested-array": json.dumps([[entry]]),
        "unregistered-type": one(type="medication_admin"),
        "type-missing": json.dumps([{"actions": ["read"], "identifier": mine}]),
        "unknown-field-locations": one(locations=["https://evil.example"]),
        "unknown-field-datatypes": one(datatypes=["*"]),
        "widened-actions": one(actions=["read", "write_note"]),
        "every-action": one(actions=["read", "write_note", "update_medication"]),
        "unknown-action": one(actions=["delete"]),
        "actions-a-string": one(actions="read"),
        "actions-empty": one(actions=[]),
        "identifier-wildcard": one(identifier="Patient/*"),
        "identifier-sql": one(identifier="Patient/x' OR '1'='1"),
        "identifier-missing": json.dumps(
            [{"type": "patient_record", "actions": ["read"]}]
        ),
        "identifier-practitioner": one(identifier=f"Practitioner/{BOKAFOR}"),
        "identifier-a-list": one(identifier=[mine, "Patient/x"]),
        "identifier-rtl-override": one(identifier=mine + "\u202e"),
        "identifier-zero-width": one(identifier=mine + "\u200b"),
        "identifier-nul": one(identifier=mine + "\x00"),
        "identifier-oversized": one(identifier="Patient/" + "a" * 65),
        "identifier-shell": one(identifier="Patient/$(id)"),
        "roster-widened-to-write": json.dumps(
            [
                {
                    "type": "care_team_roster",
                    "actions": ["read", "write_note"],
                    "identifier": f"Practitioner/{ACHEN}",
                }
            ]
        ),
    }


DETAILS = [
    "not-json",
    "json-null",
    "object-not-array",
    "empty-array",
    "two-details",
    "same-detail-twice",
    "string-entry",
    "nested-array",
    "unregistered-type",
    "type-missing",
    "unknown-field-locations",
    "unknown-field-datatypes",
    "widened-actions",
    "every-action",
    "unknown-action",
    "actions-a-string",
    "actions-empty",
    "identifier-wildcard",
    "identifier-sql",
    "identifier-missing",
    "identifier-practitioner",
    "identifier-a-list",
    "identifier-rtl-override",
    "identifier-zero-width",
    "identifier-nul",
    "identifier-oversized",
    "identifier-shell",
    "roster-widened-to-write",
]


@pytest.mark.parametrize("case", DETAILS)
async def test_widened_or_malformed_authorization_details_are_refused(
    lab: Lab, case: str
) -> None:
    form = lab.form(authorization_details=_details(lab)[case])

    await refused(lab, form, "invalid_authorization_details")


@pytest.mark.parametrize(
    ("roster", "error", "status"),
    [
        (f"Practitioner/{BOKAFOR}", "access_denied", 403),
        (f"Practitioner/{ACHEN}x", "access_denied", 403),
        ("Practitioner/*", "invalid_authorization_details", 400),
    ],
)
async def test_another_clinicians_roster_is_refused(
    lab: Lab, roster: str, error: str, status: int
) -> None:
    detail = [{"type": "care_team_roster", "actions": ["read"], "identifier": roster}]

    form = lab.form(authorization_details=json.dumps(detail))

    await refused(lab, form, error, status)


# -- audience and resource of the exchange -------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"audience": "https://evil.example"},
        {"audience": "trustloop-vault/"},
        {"audience": None},
        {"resource": "https://evil.example"},
    ],
    ids=["other-audience", "audience-suffix", "no-audience", "resource-present"],
)
async def test_a_token_for_anything_but_vault_is_invalid_target(
    lab: Lab, overrides: dict[str, str | None]
) -> None:
    await refused(lab, lab.form(**overrides), "invalid_target")


# -- the form itself -------------------------------------------------------------------


def _raw_forms(lab: Lab) -> dict[str, tuple[bytes, str]]:
    form = lab.form()
    encoded = urlencode(form)
    urlencoded = "application/x-www-form-urlencoded"
    return {
        "subject-token-twice": (
            f"{encoded}&subject_token={quote(lab.access())}".encode(),
            urlencoded,
        ),
        "audience-twice": (
            f"{encoded}&audience=https%3A%2F%2Fevil".encode(),
            urlencoded,
        ),
        "over-64-kib": (f"{encoded}&pad={'a' * 70_000}".encode(), urlencoded),
        "json-body": (json.dumps(form).encode(), "application/json"),
        "not-utf8": (encoded.encode() + b"&x=%ff\xff", urlencoded),
    }


@pytest.mark.parametrize(
    "case",
    ["subject-token-twice", "audience-twice", "over-64-kib", "json-body", "not-utf8"],
)
async def test_a_polluted_or_oversized_form_is_invalid_request(
    lab: Lab, case: str
) -> None:
    """RFC 6749 §3.2: a parameter sent twice, or a body that is no form, is refused."""
    content, content_type = _raw_forms(lab)[case]
    granted = lab.events("token_exchanged")
    transport = httpx.ASGITransport(app=lab.app)

    async with httpx.AsyncClient(transport=transport, base_url=lab.issuer) as c:
        response = await c.post(
            "/oauth2/token", content=content, headers={"Content-Type": content_type}
        )

    status = 413 if case == "over-64-kib" else 400  # refused unread, by BodyLimit
    assert (response.status_code, response.json()["error"]) == (
        status,
        "invalid_request",
    )
    assert "eyJ" not in response.text
    assert lab.events("token_exchanged") == granted
