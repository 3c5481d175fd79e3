"""The demo clinicians and the deterministic care-team assignment (dev-only).

Shared by the IdP stand-in (who can sign in) and the records demo set-up (whose
care team each patient is on), so both agree on every ``sub``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Clinician:
    username: str
    sub: str
    name: str
    role: str


CLINICIANS: tuple[Clinician, ...] = (
    Clinician("achen", "clin-achen", "Dr. Amelia Chen", "physician"),
    Clinician("bokafor", "clin-bokafor", "Dr. Ben Okafor", "physician"),
    Clinician("cwhite", "clin-cwhite", "Casey White, RN", "nurse"),
)


def by_username(username: str) -> Clinician | None:
    return next((c for c in CLINICIANS if c.username == username), None)


def care_team_for(patient_index: int) -> tuple[Clinician, ...]:
    """One or two clinicians for the patient at ``patient_index`` (sorted by id)."""
    first = CLINICIANS[patient_index % len(CLINICIANS)]
    if patient_index % 4 == 0:
        return (first, CLINICIANS[(patient_index + 1) % len(CLINICIANS)])
    return (first,)


def is_sensitive(patient_index: int) -> bool:
    """A few patients are restricted (step-up needed): every seventh one."""
    return patient_index % 7 == 3
