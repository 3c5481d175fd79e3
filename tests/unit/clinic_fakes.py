"""Plain Strands tools named and shaped as the MCP server's (contracts.md, "Tools").

Results are contract-shaped FHIR R4 resources; every call is recorded, and a
patient or action can be set to be refused the way the MCP server refuses
(``access_denied: ...`` as an error result).
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass, field
from typing import Any

from strands import tool

from trustloop.agent.names import name_tokens

ALDA_ID = "6f1c2d9e-1b7a-4c55-9a51-3c0e8f2b7d10"
CARTER_ID = "9b1e6c1a-3d55-4b8e-a0e1-6d2b9c7e4f21"
GUSTAVO_ID = "cdf500b9-7cc4-424d-a86c-a18e6620d6e7"
METFORMIN_ID = "medreq-metformin-1"
OLD_METFORMIN_ID = "medreq-metformin-0"
LISINOPRIL_ID = "medreq-lisinopril-1"
METFORMIN = "Metformin hydrochloride"
DECLINED = "access_denied: the clinician declined the step-up"

PATIENTS: list[dict[str, Any]] = [
    {
        "id": ALDA_ID,
        "name": "Alda Carter",
        "birth_date": "1961-04-12",
        "gender": "female",
        "sensitive": False,
    },
    {
        "id": CARTER_ID,
        "name": "Carter Smith",
        "birth_date": "1970-09-30",
        "gender": "male",
        "sensitive": False,
    },
    {
        "id": GUSTAVO_ID,
        "name": "Gustavo Mejía",
        "birth_date": "1958-01-20",
        "gender": "male",
        "sensitive": True,
    },
]


def medication(med_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": med_id,
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {"text": text},
        "subject": {"reference": f"Patient/{ALDA_ID}"},
        "authoredOn": "2019-05-02",
        "dosageInstruction": [{"text": "500 mg twice daily"}],
    }


def hba1c(value: float, when: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}],
                 "text": "Hemoglobin A1c/Hemoglobin.total in Blood"},
        "valueQuantity": {"value": value, "unit": "%"},
        "effectiveDateTime": f"{when}T09:00:00+00:00",
    }  # fmt: skip


@dataclass
class Clinic:
    """The six tools over a small chart; ``refuse`` maps (tool, patient) to a text."""

    refuse: dict[tuple[str, str], str] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    medications: list[dict[str, Any]] = field(
        default_factory=lambda: [
            medication(METFORMIN_ID, f"{METFORMIN} 500 MG Oral Tablet", "active"),
            medication(OLD_METFORMIN_ID, f"{METFORMIN} 850 MG Oral Tablet", "stopped"),
            medication(LISINOPRIL_ID, "Lisinopril 10 MG Oral Tablet", "active"),
        ]
    )  # fmt: skip
    notes: list[dict[str, Any]] = field(default_factory=list)
    labs: list[dict[str, Any]] = field(
        default_factory=lambda: [hba1c(7.4, "2024-03-01"), hba1c(6.9, "2023-09-01")]
    )

    def tools(self) -> list[Any]:
        @tool
        def list_my_patients() -> dict[str, Any]:
            """List the patients on the signed-in clinician's care team."""
            return self._answer("list_my_patients", {}, {"patients": PATIENTS})

        @tool
        def find_patient(name: str) -> dict[str, Any]:
            """Find care-team patients by name.

            Args:
                name: Words of the patient's name.
            """
            wanted = name_tokens(name)
            matches = [
                p for p in PATIENTS if _words_start(name_tokens(p["name"]), wanted)
            ]
            return self._answer("find_patient", {"name": name}, {"matches": matches})

        @tool
        def read_patient_record(patient_id: str) -> dict[str, Any]:
            """Read one patient's chart.

            Args:
                patient_id: The patient's FHIR id.
            """
            return self._answer(
                "read_patient_record",
                {"patient_id": patient_id},
                self._chart(patient_id),
            )

        @tool
        def get_lab_results(
            patient_id: str,
            code: str | None = None,
            category: str | None = None,
            since: str | None = None,
            until: str | None = None,
            limit: int | None = None,
        ) -> dict[str, Any]:
            """Observations by LOINC code or category, newest first.

            Args:
                patient_id: The patient's FHIR id.
                code: LOINC code.
                category: Observation category.
                since: ISO date.
                until: ISO date.
                limit: At most this many.
            """
            arguments = {"patient_id": patient_id, "code": code, "category": category,
                         "since": since, "until": until, "limit": limit}  # fmt: skip
            found = [o for o in self.labs if since is None or
                     o["effectiveDateTime"][:10] >= since]  # fmt: skip
            data = {"observations": found, "summary": f"{len(found)} observations"}
            return self._answer("get_lab_results", arguments, data)

        @tool
        def write_clinical_note(patient_id: str, text: str) -> dict[str, Any]:
            """Add a note to a patient's chart, after the clinician's consent.

            Args:
                patient_id: The patient's FHIR id.
                text: The note.
            """
            note = {
                "resourceType": "DocumentReference",
                "id": f"note-{len(self.notes) + 1}",
                "status": "current",
                "subject": {"reference": f"Patient/{patient_id}"},
                "date": "2026-12-03T18:00:00+00:00",
                "author": [{"reference": "Practitioner/clin-achen"}],
                "content": [{"attachment": {"contentType": "text/plain",
                             "data": base64.b64encode(text.encode()).decode()}}],
            }  # fmt: skip
            arguments = {"patient_id": patient_id, "text": text}
            answer = self._answer("write_clinical_note", arguments, {"note": note})
            if answer["status"] == "success":
                self.notes.insert(0, note)
            return answer

        @tool
        def update_medication(
            patient_id: str,
            medication_request_id: str,
            status: str | None = None,
            dosage: str | None = None,
        ) -> dict[str, Any]:
            """Change the status or dosage of one MedicationRequest, after consent.

            Args:
                patient_id: The patient's FHIR id.
                medication_request_id: The MedicationRequest id.
                status: The new status.
                dosage: The new dosage text.
            """
            arguments = {"patient_id": patient_id,
                         "medication_request_id": medication_request_id,
                         "status": status, "dosage": dosage}  # fmt: skip
            old = next(m for m in self.medications if m["id"] == medication_request_id)
            new = copy.deepcopy(old)
            if status:
                new["status"] = status
            if dosage:
                new["dosageInstruction"] = [{"text": dosage}]
            data = {"medication_request": new, "previous": old}
            return self._answer("update_medication", arguments, data)

        return [list_my_patients, find_patient, read_patient_record,
                get_lab_results, write_clinical_note, update_medication]  # fmt: skip

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def _chart(self, patient_id: str) -> dict[str, Any]:
        entry = next((p for p in PATIENTS if p["id"] == patient_id), PATIENTS[0])
        given, family = entry["name"].split(" ", 1)
        return {
            "patient": {"resourceType": "Patient", "id": patient_id,
                        "name": [{"family": family, "given": [given]}],
                        "birthDate": entry["birth_date"], "gender": entry["gender"]},
            "conditions": [],
            "medications": self.medications,
            "encounters": [],
            "observations": [],
            "notes": self.notes,
        }  # fmt: skip

    def _answer(
        self, name: str, arguments: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        self.calls.append((name, arguments))
        refusal = self.refuse.get((name, str(arguments.get("patient_id"))))
        if refusal is not None:
            return {"status": "error", "content": [{"text": refusal}]}
        payload = {**data, "summary": data.get("summary", "ok"),
                   "obo_jti": f"jti-{name}-{len(self.calls)}"}  # fmt: skip
        return {"status": "success", "content": [{"text": json.dumps(payload)}]}


def _words_start(words: list[str], wanted: list[str]) -> bool:
    return bool(wanted) and all(any(w.startswith(t) for w in words) for t in wanted)
