"""RFC 9396 authorization details: exactly one resource and one action."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from trustloop.identity.rar import (
    AuthorizationDetail,
    parse_details,
    patient_read,
    patient_write,
    roster_read,
)


def test_a_patient_read_detail_serialises_as_rfc_9396_json() -> None:
    detail = patient_read("27de96c6-6910-4f0f-8f10-00ce6090f447")
    assert detail.wire() == {
        "type": "patient_record",
        "actions": ["read"],
        "identifier": "Patient/27de96c6-6910-4f0f-8f10-00ce6090f447",
    }
    assert detail.role_key() == "patient_record|read"
    assert detail.resource_id == "27de96c6-6910-4f0f-8f10-00ce6090f447"


def test_roster_detail_names_the_practitioner() -> None:
    assert roster_read("clin-achen").identifier == "Practitioner/clin-achen"


@pytest.mark.parametrize(
    "raw",
    [
        {
            "type": "patient_record",
            "actions": ["read", "write"],
            "identifier": "Patient/a",
        },
        {"type": "patient_record", "actions": [], "identifier": "Patient/a"},
        {"type": "patient_record", "actions": ["write"], "identifier": "Patient/a"},
        {"type": "patient_record", "actions": ["read"], "identifier": "Patient/*"},
        {"type": "patient_record", "actions": ["read"], "identifier": "Practitioner/a"},
        {"type": "care_team_roster", "actions": ["read"], "identifier": "Patient/a"},
        {
            "type": "patient_record",
            "actions": ["read"],
            "identifier": "Patient/a",
            "x": 1,
        },
        {"type": "everything", "actions": ["read"], "identifier": "Patient/a"},
        {
            "type": "patient_record",
            "actions": ["read"],
            "identifier": "Patient/a'; drop",
        },
    ],
)
def test_widened_or_malformed_details_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        parse_details(json.dumps([raw]))


def test_details_parse_from_a_jwt_claim_list() -> None:
    details = parse_details(
        [{"type": "patient_record", "actions": ["read"], "identifier": "Patient/a"}]
    )
    assert details == [patient_read("a")]


def test_a_write_detail_must_name_the_digest_of_its_change() -> None:
    """Consent, the OBO token and the database bind to one exact change."""
    with pytest.raises(ValidationError, match="change_sha256 is required"):
        AuthorizationDetail(
            type="patient_record", actions=("write_note",), identifier="Patient/a"
        )
    with pytest.raises(ValidationError, match="only for writes"):
        AuthorizationDetail(
            type="patient_record",
            actions=("read",),
            identifier="Patient/a",
            change_sha256="ab" * 32,
        )
    with pytest.raises(ValidationError):
        patient_write("a", "write_note", "AB" * 32)  # lower-case hex only


def test_a_write_detail_carries_its_digest_on_the_wire() -> None:
    detail = patient_write("a", "update_medication", "0f" * 32)

    assert detail.wire() == {
        "type": "patient_record",
        "actions": ["update_medication"],
        "identifier": "Patient/a",
        "change_sha256": "0f" * 32,
    }
    assert parse_details([detail.wire()]) == [detail]
