"""Tool results as FHIR R4B: validated before they leave, notes as DocumentReference."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.documentreference import DocumentReference
from structlog.testing import capture_logs

from trustloop.identity.rhythm import ToolCallError
from trustloop.tools.fhir_results import document_reference, note_text_of, validated

NOTE = {
    "id": "6b1f0c1e-8f0e-4a63-9d1e-2f4b5c6d7e8f",
    "patient_id": "p-1",
    "author_sub": "clin-achen",
    "obo_jti": "j-1",
    "text": "Café <b>tolerated</b> & walking 2 km.\nNext: review in 2 weeks.",
    "created_at": "2026-12-03T10:00:00+00:00",
}


def test_a_note_becomes_a_valid_document_reference_keeping_its_text() -> None:
    document = document_reference(NOTE)

    DocumentReference.model_validate(document)
    assert document["subject"] == {"reference": "Patient/p-1"}
    assert document["author"] == [{"reference": "Practitioner/clin-achen"}]
    assert document["date"] == NOTE["created_at"]
    assert note_text_of(document) == NOTE["text"]
    assert "&lt;b&gt;tolerated&lt;/b&gt; &amp; walking" in document["text"]["div"]


def test_a_resource_that_fails_r4b_is_a_server_error_logged_without_values() -> None:
    broken = {
        "resourceType": "Observation",
        "id": "o-1",
        "status": "final",
        "code": {"text": "Glucose"},
        "effectiveDateTime": "SECRET-not-a-date",
    }

    with capture_logs() as logs, pytest.raises(ToolCallError) as refused:
        validated(broken, "Observation")

    assert str(refused.value) == (
        "server_error: a stored record (Observation) failed FHIR R4B validation"
    )
    assert logs[0]["fields"] == ["effectiveDateTime"]
    assert logs[0]["resource_id"] == "o-1"
    assert "SECRET" not in repr(logs)


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Patient", "id": "p-1"},
        "Patient/p-1",
        None,
    ],
    ids=["other-type", "a-string", "null"],
)
def test_anything_but_the_expected_resource_type_is_refused(resource: object) -> None:
    with pytest.raises(
        ToolCallError, match=r"^server_error: a stored record \(Observation\)"
    ):
        validated(resource, "Observation")


def test_a_valid_resource_leaves_unchanged() -> None:
    resource = {
        "resourceType": "Condition",
        "id": "c-1",
        "subject": {"reference": "Patient/p-1"},
        "onsetDateTime": "2001-02-03T04:05:06-05:00",
    }

    assert validated(resource, "Condition") is resource
