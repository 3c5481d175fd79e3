"""From one FHIR resource (references already resolved) to one table row.

Each stored table has an upsert statement keyed by ``id``; a patient's resource
never moves to another patient by being loaded again under another subject.
Patients never have
``sensitive`` overwritten by an import: that flag is set by whoever administers
restrictions (locally, the demo set-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.types.json import Jsonb

from trustloop.records import fhir_models as fm

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True)
class Table:
    """A ``clinical`` table the importer writes, and its upsert."""

    name: str
    columns: tuple[str, ...]
    # Rows a re-import must not overwrite (a clinician's committed change).
    keep_if: str | None = None

    @property
    def patient_scoped(self) -> bool:
        return "patient_id" in self.columns

    @property
    def upsert(self) -> sql.Composed:
        cols = sql.SQL(", ").join(map(sql.Identifier, self.columns))
        values = sql.SQL(", ").join(map(sql.Placeholder, self.columns))
        updates = sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
            for c in self.columns
            if c != "id"
        )
        upsert = sql.SQL(
            "INSERT INTO clinical.{} ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}"
        ).format(sql.Identifier(self.name), cols, values, updates)
        # A row never moves to another patient (the importer refuses such a file
        # first, see fhir_import; this holds even against a concurrent load).
        conditions: list[sql.Composable] = []
        if self.keep_if is not None:
            conditions.append(sql.SQL("NOT ({})").format(sql.SQL(self.keep_if)))
        if self.patient_scoped:
            conditions.append(
                sql.SQL("clinical.{}.patient_id = EXCLUDED.patient_id").format(
                    sql.Identifier(self.name)
                )
            )
        if not conditions:
            return upsert
        return upsert + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions)

    @property
    def owned_elsewhere(self) -> sql.Composed:
        """The first of the given ``(ids, patient_ids)`` stored for another patient."""
        return sql.SQL(
            "SELECT t.id FROM clinical.{} AS t"
            " JOIN unnest(%s::text[], %s::text[]) AS x(id, patient_id)"
            " ON t.id = x.id WHERE t.patient_id <> x.patient_id LIMIT 1"
        ).format(sql.Identifier(self.name))


PATIENTS = Table(
    "patients", ("id", "family", "given", "name", "birth_date", "gender", "resource")
)
PRACTITIONERS = Table("practitioners", ("id", "name", "resource"))
_SCOPED = ("id", "patient_id")
ENCOUNTERS = Table(
    "encounters",
    (
        *_SCOPED,
        *("status", "class_code", "type_text", "period_start", "period_end"),
        "resource",
    ),
)
CONDITIONS = Table(
    "conditions",
    (*_SCOPED, "code", "display", "clinical_status", "onset", "abatement", "resource"),
)
OBSERVATIONS = Table(
    "observations",
    (*_SCOPED, "category", "code", "display", "effective", "resource"),
)
# A medication a clinician changed keeps the change: re-importing the bundle it
# came from must not put the old status back (the history table has both).
MEDICATION_REQUESTS = Table(
    "medication_requests",
    (*_SCOPED, "status", "code", "display", "authored_on", "resource"),
    keep_if=(
        "EXISTS (SELECT 1 FROM clinical.medication_changes AS c"
        " WHERE c.medication_request_id = clinical.medication_requests.id)"
    ),
)
TABLES = (
    PATIENTS,
    PRACTITIONERS,
    ENCOUNTERS,
    CONDITIONS,
    OBSERVATIONS,
    MEDICATION_REQUESTS,
)


@dataclass(frozen=True)
class ResourceRow:
    table: Table
    params: dict[str, Any]


def to_row(resource: dict[str, Any]) -> ResourceRow | None:
    """The row for a stored resource type; None for a type we skip.

    Raises pydantic's ``ValidationError`` for a resource missing a field we need and
    ``ValueError`` for a subject that is not a Patient.
    """
    build = _BUILDERS.get(str(resource.get("resourceType")))
    return None if build is None else build(resource)


def _patient(resource: dict[str, Any]) -> ResourceRow:
    patient = fm.Patient.model_validate(resource)
    name = patient.official_name()
    return ResourceRow(
        PATIENTS,
        {
            "id": patient.id,
            "family": name.family,
            "given": " ".join(name.given) or None,
            "name": name.display() or patient.id,
            "birth_date": patient.birthDate,
            "gender": patient.gender,
            "resource": Jsonb(resource),
        },
    )


def _practitioner(resource: dict[str, Any]) -> ResourceRow:
    practitioner = fm.Practitioner.model_validate(resource)
    names = [n.display() for n in practitioner.name]
    params = {"id": practitioner.id, "name": next(iter(names), None)}
    return ResourceRow(PRACTITIONERS, {**params, "resource": Jsonb(resource)})


def _encounter(resource: dict[str, Any]) -> ResourceRow:
    enc = fm.Encounter.model_validate(resource)
    period = enc.period or fm.Period()
    return _scoped(
        ENCOUNTERS,
        enc,
        resource,
        status=enc.status,
        class_code=enc.class_.code if enc.class_ else None,
        type_text=next((t.label() for t in enc.type), None),
        period_start=period.start,
        period_end=period.end,
    )


def _condition(resource: dict[str, Any]) -> ResourceRow:
    cond = fm.Condition.model_validate(resource)
    code = cond.code or fm.CodeableConcept()
    status = cond.clinicalStatus or fm.CodeableConcept()
    return _scoped(
        CONDITIONS,
        cond,
        resource,
        code=code.first_code(),
        display=code.label(),
        clinical_status=status.first_code(),
        onset=cond.onsetDateTime,
        abatement=cond.abatementDateTime,
    )


def _observation(resource: dict[str, Any]) -> ResourceRow:
    obs = fm.Observation.model_validate(resource)
    category = next((c.first_code() for c in obs.category), None)
    return _scoped(
        OBSERVATIONS,
        obs,
        resource,
        category=category,
        code=obs.code.first_code(),
        display=obs.code.label(),
        effective=obs.effectiveDateTime or obs.issued,
    )


def _medication_request(resource: dict[str, Any]) -> ResourceRow:
    med = fm.MedicationRequest.model_validate(resource)
    concept = med.medicationCodeableConcept or fm.CodeableConcept()
    return _scoped(
        MEDICATION_REQUESTS,
        med,
        resource,
        status=med.status,
        code=concept.first_code(),
        display=concept.label(),
        authored_on=med.authoredOn,
    )


def _scoped(
    table: Table, parsed: fm.PatientScoped, resource: dict[str, Any], **columns: Any
) -> ResourceRow:
    params = {"id": parsed.id, "patient_id": _patient_id(parsed), **columns}
    return ResourceRow(table, {**params, "resource": Jsonb(resource)})


def _patient_id(parsed: fm.PatientScoped) -> str:
    ref = parsed.subject.reference or ""
    kind, _, rid = ref.partition("/")
    if kind != "Patient" or not rid:
        raise ValueError(f"{parsed.id}: subject is not a Patient of this bundle")
    return rid


_BUILDERS: dict[str, Callable[[dict[str, Any]], ResourceRow]] = {
    "Patient": _patient,
    "Practitioner": _practitioner,
    "Encounter": _encounter,
    "Condition": _condition,
    "Observation": _observation,
    "MedicationRequest": _medication_request,
}
