"""The demo clinicians and the deterministic care-team assignment (dev-only).

Shared by the IdP stand-in (who can sign in) and the records demo set-up (whose
care team each patient is on), so both agree on every ``sub``. A patient's care
team and restriction follow from a SHA-256 of its id alone, never from which other
patients happen to be loaded.
"""

from __future__ import annotations

import hashlib
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


def care_team_for(patient_id: str) -> tuple[Clinician, ...]:
    """One clinician for the patient, and a second one for about one in four.

    Depends on ``patient_id`` alone, so loading other patients never changes it.
    """
    draw = _draw(patient_id)
    first = draw % len(CLINICIANS)
    if (draw // len(CLINICIANS)) % 4 == 0:
        return (CLINICIANS[first], CLINICIANS[(first + 1) % len(CLINICIANS)])
    return (CLINICIANS[first],)


def is_sensitive(patient_id: str) -> bool:
    """Whether the patient is restricted (step-up needed): about one in seven.

    Depends on ``patient_id`` alone, so loading other patients never changes it.
    """
    return (_draw(patient_id) // (len(CLINICIANS) * 4)) % 7 == 0


def _draw(patient_id: str) -> int:
    # A stable number per patient (unlike hash(), which is salted per process).
    # care_team_for and is_sensitive read different digits of it, so the two
    # choices are independent of each other.
    digest = hashlib.sha256(patient_id.encode()).digest()
    return int.from_bytes(digest[:8], "big")
