"""The tools' input schemas: advertised to clients and enforced before any call.

docs/contracts.md, "Tools": inputs are strict JSON Schema (types, lengths,
patterns, enums, no extra properties). Each tool's arguments are one pydantic
model here; its JSON Schema is what ``tools/list`` advertises, and
:func:`parse` enforces the same model on the raw arguments before the tool asks
the IdP anything. A violation is ``invalid_request: <field>: <reason>``; the
reason never repeats the value (it may be patient data, or hostile).

Free text (a note, a dosage) is NFC-normalised and stripped, and may not hold
control or invisible formatting characters (bidirectional overrides, zero-width
spaces): the clinician's consent push must show exactly what will be written.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from trustloop.identity.rhythm import ToolCallError
from trustloop.records.changes import MedicationStatus, note_text

# FHIR R4 datatypes, "id".
FHIR_ID_PATTERN = r"^[A-Za-z0-9\-.]{1,64}$"
LOINC_PATTERN = r"^[0-9]{1,7}-[0-9]$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# Letters of any script, spaces, ' - . : refuses digits, controls and other ASCII
# punctuation (the check below also refuses non-letters outside ASCII).
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f0-9!-&(-,/:-@\[-`{-~]{1,100}$"
NOTE_MAX_CHARS = 4000
DOSAGE_MAX_CHARS = 200
NAME_MAX_CHARS = 100
DEFAULT_LAB_LIMIT = 20

ObservationCategory = Literal[
    "laboratory",
    "vital-signs",
    "survey",
    "social-history",
    "exam",
    "imaging",
    "procedure",
    "therapy",
    "activity",
]

_FHIR_ID = re.compile(FHIR_ID_PATTERN)
_LOINC = re.compile(LOINC_PATTERN)
_DATE = re.compile(DATE_PATTERN)
_NAME_PUNCTUATION = frozenset(" '-.\u2019")
# Unicode categories free text may not hold: controls (but tab and newline),
# format characters (bidi overrides, zero-width), surrogates, private use.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_ALLOWED_CONTROLS = frozenset("\t\n")
_SAFE_FIELD = re.compile(r"[a-z_]{1,40}")

Model = TypeVar("Model", bound=BaseModel)


# -- field rules -------------------------------------------------------------------


def _fhir_id(value: str) -> str:
    if not _FHIR_ID.fullmatch(value):
        raise ValueError("must be a FHIR id ([A-Za-z0-9-.]{1,64})")
    return value


def _loinc(value: str) -> str:
    if not _LOINC.fullmatch(value):
        raise ValueError("must be a LOINC code such as 4548-4")
    return value


def _iso_date(value: str) -> str:
    try:
        if not _DATE.fullmatch(value):
            raise ValueError
        date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date as YYYY-MM-DD") from None
    return value


def _person_name(value: str) -> str:
    folded = unicodedata.normalize("NFC", value).strip()
    if not folded:
        raise ValueError("must not be blank")
    for char in folded:
        if char not in _NAME_PUNCTUATION and unicodedata.category(char)[0] not in "LM":
            raise ValueError("must be letters, spaces, hyphens, apostrophes or periods")
    return folded


def _free_text(limit: int, *, one_line: bool = False) -> AfterValidator:
    def check(value: str) -> str:
        text = note_text(value.replace("\r\n", "\n"))
        if not text:
            raise ValueError("must not be blank")
        if one_line and ("\n" in text or "\t" in text):
            raise ValueError("must be one line")
        if len(text) > limit:
            raise ValueError(f"must be at most {limit} characters")
        if any(_hidden(char) for char in text):
            raise ValueError("must not hold control or invisible formatting characters")
        return text

    return AfterValidator(check)


def _hidden(char: str) -> bool:
    return char not in _ALLOWED_CONTROLS and unicodedata.category(char) in (
        _HIDDEN_CATEGORIES
    )


def _string_schema(description: str, **constraints: Any) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "description": description, **constraints})


PatientId = Annotated[
    str,
    AfterValidator(_fhir_id),
    _string_schema(
        "FHIR Patient id, as list_my_patients or find_patient returns it",
        pattern=FHIR_ID_PATTERN,
        minLength=1,
        maxLength=64,
    ),
]
MedicationRequestId = Annotated[
    str,
    AfterValidator(_fhir_id),
    _string_schema(
        "FHIR MedicationRequest id, as read_patient_record returns it",
        pattern=FHIR_ID_PATTERN,
        minLength=1,
        maxLength=64,
    ),
]
LoincCode = Annotated[
    str,
    AfterValidator(_loinc),
    _string_schema("LOINC code, e.g. 4548-4 (HbA1c)", pattern=LOINC_PATTERN),
]
IsoDate = Annotated[
    str,
    AfterValidator(_iso_date),
    _string_schema("a date, YYYY-MM-DD", format="date", pattern=DATE_PATTERN),
]
PersonName = Annotated[
    str,
    Field(min_length=1, max_length=NAME_MAX_CHARS),
    AfterValidator(_person_name),
    _string_schema(
        "a patient's name or its start, e.g. 'Mejia' or 'gus mej'",
        pattern=NAME_PATTERN,
        minLength=1,
        maxLength=NAME_MAX_CHARS,
    ),
]
NoteText = Annotated[
    str,
    Field(min_length=1, max_length=NOTE_MAX_CHARS),
    _free_text(NOTE_MAX_CHARS),
    _string_schema(
        "the note, plain text; the clinician approves exactly this text",
        minLength=1,
        maxLength=NOTE_MAX_CHARS,
    ),
]
DosageText = Annotated[
    str,
    Field(min_length=1, max_length=DOSAGE_MAX_CHARS),
    # One line: a dosage instruction is one, and the consent push shows it whole.
    _free_text(DOSAGE_MAX_CHARS, one_line=True),
    _string_schema(
        "the new dosage instruction, one line of plain text, e.g. '500 mg twice a day'",
        minLength=1,
        maxLength=DOSAGE_MAX_CHARS,
        pattern="^[^\\n\\t]+$",
    ),
]


# -- one model per tool ------------------------------------------------------------


class Arguments(BaseModel):
    """Strict: JSON types only as declared, no field beyond the declared ones."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class NoArguments(Arguments):
    """``list_my_patients`` takes nothing."""


class FindPatientArguments(Arguments):
    name: PersonName


class PatientArguments(Arguments):
    patient_id: PatientId


class LabArguments(Arguments):
    patient_id: PatientId
    code: LoincCode | None = None
    category: ObservationCategory | None = None
    since: IsoDate | None = None
    until: IsoDate | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = DEFAULT_LAB_LIMIT

    @model_validator(mode="after")
    def _range_in_order(self) -> LabArguments:
        if self.since and self.until and self.until < self.since:
            raise ValueError("until: must not be before since")
        return self


class NoteArguments(Arguments):
    patient_id: PatientId
    text: NoteText


class MedicationArguments(Arguments):
    patient_id: PatientId
    medication_request_id: MedicationRequestId
    status: MedicationStatus | None = None
    dosage: DosageText | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> MedicationArguments:
        if self.status is None and self.dosage is None:
            raise ValueError("status: give a new status, a new dosage, or both")
        return self


# -- enforcement -------------------------------------------------------------------


def input_schema(model: type[Arguments]) -> dict[str, Any]:
    """The JSON Schema advertised in ``tools/list`` (``additionalProperties`` false)."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    schema.setdefault("properties", {})
    return schema


def parse(model: type[Model], arguments: object) -> Model:
    """``arguments`` checked against ``model``, or ``invalid_request: <field>: ...``."""
    if not isinstance(arguments, dict):
        raise ToolCallError("invalid_request", "arguments: must be a JSON object")
    try:
        return model.model_validate(arguments)
    except ValidationError as exc:
        raise ToolCallError("invalid_request", _first_reason(exc)) from None


def _first_reason(exc: ValidationError) -> str:
    # include_input=False: the refused value never reaches a message or a log.
    error = exc.errors(include_input=False, include_url=False)[0]
    loc = [str(part) for part in error["loc"] if not isinstance(part, int)]
    # A union's branch name (str, literal[...]) is pydantic's, not the caller's.
    field = loc[0] if loc else "arguments"
    if not _SAFE_FIELD.fullmatch(field):  # an unknown key is the caller's text
        return "arguments: holds an argument this tool does not take"
    reason = _reason(error["type"], error.get("ctx") or {}, error["msg"])
    if not loc and ": " in reason:  # a model rule names its own field
        return reason
    return f"{field}: {reason}"


def _reason(kind: str, ctx: dict[str, Any], message: str) -> str:
    match kind:
        case "missing":
            return "is required"
        case "extra_forbidden":
            return "is not an argument of this tool"
        case "string_type":
            return "must be a string"
        case "int_type" | "int_parsing" | "int_from_float":
            return "must be an integer"
        case "string_too_short":
            return f"must be at least {ctx.get('min_length')} characters"
        case "string_too_long":
            return f"must be at most {ctx.get('max_length')} characters"
        case "greater_than_equal":
            return f"must be at least {ctx.get('ge')}"
        case "less_than_equal":
            return f"must be at most {ctx.get('le')}"
        case "literal_error":
            return f"must be one of {ctx.get('expected')}"
        case "value_error":
            return str(ctx.get("error", message))
        case _:
            return "is not valid"
