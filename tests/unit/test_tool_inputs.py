"""The tools' strict input schemas: what is accepted, and how a refusal reads."""

from __future__ import annotations

from typing import Any

import pytest

from trustloop.identity.rhythm import ToolCallError
from trustloop.records.changes import MEDICATION_STATUSES
from trustloop.tools import inputs
from trustloop.tools.catalog import SPECS

HOSTILE = "x'; DROP TABLE clinical.notes;--"


def refusal(model: type[inputs.Arguments], arguments: object) -> str:
    with pytest.raises(ToolCallError) as refused:
        inputs.parse(model, arguments)
    assert refused.value.code == "invalid_request"
    return refused.value.description


@pytest.mark.parametrize(
    ("model", "arguments", "expected"),
    [
        (inputs.PatientArguments, {}, "patient_id: is required"),
        (inputs.PatientArguments, {"patient_id": 7}, "patient_id: must be a string"),
        (
            inputs.PatientArguments,
            {"patient_id": "p-1", "sql": HOSTILE},
            "sql: is not an argument of this tool",
        ),
        (inputs.NoArguments, {"x": 1}, "x: is not an argument of this tool"),
        (
            inputs.LabArguments,
            {"patient_id": "p-1", "code": "HbA1c"},
            "code: must be a LOINC code such as 4548-4",
        ),
        (
            inputs.LabArguments,
            {"patient_id": "p-1", "since": "2020-02-30"},
            "since: must be a date as YYYY-MM-DD",
        ),
        (
            inputs.LabArguments,
            {"patient_id": "p-1", "since": "2021-01-02", "until": "2021-01-01"},
            "until: must not be before since",
        ),
        (
            inputs.LabArguments,
            {"patient_id": "p-1", "limit": 101},
            "limit: must be at most 100",
        ),
        (
            inputs.LabArguments,
            {"patient_id": "p-1", "limit": "5"},
            "limit: must be an integer",
        ),
        (
            inputs.LabArguments,
            {"patient_id": "p-1", "limit": True},
            "limit: must be an integer",
        ),
        (
            inputs.FindPatientArguments,
            {"name": "a" * 101},
            "name: must be at most 100 characters",
        ),
        (inputs.FindPatientArguments, {"name": "   "}, "name: must not be blank"),
        (
            inputs.NoteArguments,
            {"patient_id": "p-1", "text": "a" * 4001},
            "text: must be at most 4000 characters",
        ),
        (
            inputs.NoteArguments,
            {"patient_id": "p-1", "text": "\n\t "},
            "text: must not be blank",
        ),
        (
            inputs.MedicationArguments,
            {"patient_id": "p-1", "medication_request_id": "m-1"},
            "status: give a new status, a new dosage, or both",
        ),
        (
            inputs.MedicationArguments,
            {"patient_id": "p-1", "medication_request_id": "m-1", "dosage": "d" * 201},
            "dosage: must be at most 200 characters",
        ),
        (
            inputs.MedicationArguments,
            {
                "patient_id": "p-1",
                "medication_request_id": "m-1",
                "dosage": "5 mg once daily\nthen 50 mg every hour",
            },
            "dosage: must be one line",
        ),
    ],
)
def test_each_violation_names_its_field_and_reason(
    model: type[inputs.Arguments], arguments: dict[str, Any], expected: str
) -> None:
    assert refusal(model, arguments) == expected


def test_an_unknown_argument_with_a_hostile_name_is_not_echoed() -> None:
    reason = refusal(inputs.PatientArguments, {"patient_id": "p-1", HOSTILE: 1})

    assert reason == "arguments: holds an argument this tool does not take"


@pytest.mark.parametrize(
    "name", ["Robert'); DROP TABLE x;--", "$(id)", "Ana2", "abc\u202edef", "a\x00b"]
)
def test_a_name_of_anything_but_letters_is_refused_without_echo(name: str) -> None:
    reason = refusal(inputs.FindPatientArguments, {"name": name})

    assert reason == "name: must be letters, spaces, hyphens, apostrophes or periods"


@pytest.mark.parametrize(
    "hidden", ["\u202e", "\u200b", "\ufeff", "\x00", "\x1b", "\ue000"]
)
def test_free_text_with_invisible_or_control_characters_is_refused(
    hidden: str,
) -> None:
    arguments = {"patient_id": "p-1", "text": f"Stop{hidden} warfarin"}

    reason = refusal(inputs.NoteArguments, arguments)

    assert reason == "text: must not hold control or invisible formatting characters"


def test_a_note_is_nfc_normalised_and_stripped() -> None:
    parsed = inputs.parse(
        inputs.NoteArguments,
        {"patient_id": "p-1", "text": "  Caf\u0065\u0301 with Jos\u00e9\r\nok\t "},
    )

    assert parsed.text == "Caf\u00e9 with Jos\u00e9\nok"


def test_lab_arguments_default_to_twenty_of_anything() -> None:
    parsed = inputs.parse(inputs.LabArguments, {"patient_id": "p-1"})

    assert (parsed.code, parsed.category, parsed.since, parsed.limit) == (
        None,
        None,
        None,
        20,
    )


def test_medication_statuses_are_fhirs() -> None:
    """FHIR R4's medicationrequest-status value set, as the schema advertises it."""
    fhir_r4 = [
        "active",
        "on-hold",
        "cancelled",
        "completed",
        "entered-in-error",
        "stopped",
        "draft",
        "unknown",
    ]
    schema = inputs.input_schema(inputs.MedicationArguments)["properties"]["status"]
    enums = [branch["enum"] for branch in schema["anyOf"] if "enum" in branch]

    assert enums == [fhir_r4]
    assert list(MEDICATION_STATUSES) == fhir_r4


def test_every_advertised_schema_forbids_extra_properties_and_types_each_field() -> (
    None
):
    for spec in SPECS:
        schema = inputs.input_schema(spec.arguments)
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        for name, field in schema["properties"].items():
            branches = field.get("anyOf", [field])
            assert all("type" in branch for branch in branches), (spec.name, name)


def test_string_fields_advertise_their_limits() -> None:
    note = inputs.input_schema(inputs.NoteArguments)["properties"]
    labs = inputs.input_schema(inputs.LabArguments)["properties"]

    assert (note["text"]["minLength"], note["text"]["maxLength"]) == (1, 4000)
    assert labs["code"]["anyOf"][0]["pattern"] == inputs.LOINC_PATTERN
    assert "laboratory" in labs["category"]["anyOf"][0]["enum"]
    assert (labs["limit"]["minimum"], labs["limit"]["maximum"]) == (1, 100)
