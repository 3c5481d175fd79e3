"""The FHIR R4 fields the importer reads, as strict-enough pydantic models.

Only what the tables need is modelled; everything else in a resource is ignored here
and kept untouched in the stored ``resource`` document. A resource that lacks a
field we need (an id, a subject) fails validation, which the importer reports as a
bad bundle.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _pad_partial_datetime(value: object) -> object:
    """FHIR ``dateTime`` may be ``YYYY`` or ``YYYY-MM``; start of that period."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}(-\d{2})?", value):
        return value + "-01" * (3 - value.count("-") - 1)
    return value


FhirDateTime = Annotated[datetime | date, BeforeValidator(_pad_partial_datetime)]
FhirId = Annotated[str, Field(pattern=r"^[A-Za-z0-9\-.]{1,64}$")]
# Bounds on what the tools show, so one file cannot bloat every roster and chart
# (Synthea's longest: names 12 characters, codes' labels 113).
NamePart = Annotated[str, Field(max_length=200)]
Label = Annotated[str, Field(max_length=1000)]
Code = Annotated[str, Field(max_length=200)]


class _Element(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Reference(_Element):
    reference: str | None = None


class Coding(_Element):
    system: str | None = None
    code: Code | None = None
    display: Label | None = None


class CodeableConcept(_Element):
    coding: list[Coding] = []
    text: Label | None = None

    def first_code(self) -> str | None:
        return next((c.code for c in self.coding if c.code), None)

    def label(self) -> str | None:
        return self.text or next((c.display for c in self.coding if c.display), None)


class HumanName(_Element):
    use: str | None = None
    family: NamePart | None = None
    given: list[NamePart] = Field(default=[], max_length=10)

    def display(self) -> str:
        return " ".join([*self.given, self.family or ""]).strip()


class Period(_Element):
    start: FhirDateTime | None = None
    end: FhirDateTime | None = None


class _Resource(_Element):
    id: FhirId


class PatientScoped(_Resource):
    """A resource about one patient (``subject``)."""

    subject: Reference


class Patient(_Resource):
    resourceType: Literal["Patient"]
    name: list[HumanName] = []
    birthDate: date | None = None
    gender: Code | None = None

    def official_name(self) -> HumanName:
        official = [n for n in self.name if n.use == "official"]
        return (official or self.name or [HumanName()])[0]


class Practitioner(_Resource):
    resourceType: Literal["Practitioner"]
    name: list[HumanName] = []


class Encounter(PatientScoped):
    resourceType: Literal["Encounter"]
    status: Code | None = None
    class_: Coding | None = Field(default=None, alias="class")
    type: list[CodeableConcept] = []
    period: Period | None = None


class Condition(PatientScoped):
    resourceType: Literal["Condition"]
    code: CodeableConcept | None = None
    clinicalStatus: CodeableConcept | None = None
    onsetDateTime: FhirDateTime | None = None
    abatementDateTime: FhirDateTime | None = None


class Observation(PatientScoped):
    resourceType: Literal["Observation"]
    category: list[CodeableConcept] = []
    code: CodeableConcept
    effectiveDateTime: FhirDateTime | None = None
    issued: datetime | None = None


class MedicationRequest(PatientScoped):
    resourceType: Literal["MedicationRequest"]
    status: Code | None = None
    medicationCodeableConcept: CodeableConcept | None = None
    authoredOn: FhirDateTime | None = None


class BundleEntry(_Element):
    fullUrl: str | None = None
    resource: dict[str, Any]


class Bundle(_Element):
    """A FHIR Bundle as Synthea writes it (``type`` transaction)."""

    resourceType: Literal["Bundle"]
    type: Literal["transaction", "batch", "collection"]
    entry: list[BundleEntry] = []
