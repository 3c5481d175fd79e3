"""The care-team policy: the IdP's decision on one authorization detail.

First slice (docs/contracts.md, "Policy"):

==========================  ==============================================  ===========
detail                      allowed when                                    rule
==========================  ==============================================  ===========
``care_team_roster|read``   identifier is ``Practitioner/<own sub>``        roster_own
``patient_record|read``     the patient is on the clinician's care team     care_team
                            and not sensitive (sensitive needs step-up,     step_up
                            which this release does not offer yet)
==========================  ==============================================  ===========

An unknown patient is refused exactly like a patient off the care team, and a
sensitive patient off the care team is refused for the care team, so a refusal never
reveals whether a patient exists or is sensitive.

The facts come from PostgreSQL, read as ``trustloop_idp`` (SELECT on
``clinical.care_team_members`` and ``(id, sensitive)`` of ``clinical.patients``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import psycopg

from trustloop.identity.rar import AuthorizationDetail

NOT_ON_CARE_TEAM = "not on your care team"
STEP_UP_REQUIRED = (
    "restricted patient: step-up approval is required and is not available yet "
    "in this release"
)
NOT_YOUR_ROSTER = "a care team roster can be read only by its own clinician"


@dataclass(frozen=True)
class PolicyDecision:
    allowed: bool
    reason: str
    rule: str


@dataclass(frozen=True)
class PatientFacts:
    """What the policy knows of one patient, relative to one clinician."""

    sensitive: bool
    on_care_team: bool


class PolicyUnavailableError(Exception):
    """The policy's facts could not be read; the exchange fails closed."""


class CareTeamFacts(Protocol):
    async def patient(self, clinician_sub: str, patient_id: str) -> PatientFacts | None:
        """Facts for ``patient_id``, or None if no such patient exists."""
        ...


def decide(
    clinician_sub: str, detail: AuthorizationDetail, facts: PatientFacts | None
) -> PolicyDecision:
    """The decision for one detail, given the patient's facts (pure; table-tested)."""
    if detail.type == "care_team_roster":
        if detail.identifier == f"Practitioner/{clinician_sub}":
            return PolicyDecision(True, "own care team roster", "roster_own")
        return PolicyDecision(False, NOT_YOUR_ROSTER, "roster_own")

    if facts is None or not facts.on_care_team:
        return PolicyDecision(False, NOT_ON_CARE_TEAM, "care_team")
    if facts.sensitive:
        return PolicyDecision(False, STEP_UP_REQUIRED, "step_up")
    return PolicyDecision(True, "on the clinician's care team", "care_team")


class CareTeamPolicy:
    """Looks up the facts a detail needs and decides."""

    def __init__(self, facts: CareTeamFacts) -> None:
        self._facts = facts

    async def decide(
        self, clinician_sub: str, detail: AuthorizationDetail
    ) -> PolicyDecision:
        facts = None
        if detail.type == "patient_record":
            facts = await self._facts.patient(clinician_sub, detail.resource_id)
        return decide(clinician_sub, detail, facts)


_PATIENT_FACTS = """
SELECT p.sensitive,
       EXISTS (SELECT 1 FROM clinical.care_team_members m
               WHERE m.patient_id = p.id AND m.clinician_sub = %(sub)s)
FROM clinical.patients p
WHERE p.id = %(patient_id)s
"""


class PostgresFacts:
    """Reads care-team facts from PostgreSQL, one short connection per decision."""

    def __init__(self, conninfo: str, *, connect_timeout_s: int = 5) -> None:
        self._conninfo = conninfo
        self._timeout = connect_timeout_s

    async def patient(self, clinician_sub: str, patient_id: str) -> PatientFacts | None:
        params = {"sub": clinician_sub, "patient_id": patient_id}
        try:
            async with await psycopg.AsyncConnection.connect(
                self._conninfo, connect_timeout=self._timeout, autocommit=True
            ) as conn:
                cursor = await conn.execute(_PATIENT_FACTS, params)
                row = await cursor.fetchone()
        except psycopg.Error as exc:
            raise PolicyUnavailableError("cannot read care-team facts") from exc
        if row is None:
            return None
        return PatientFacts(sensitive=bool(row[0]), on_care_team=bool(row[1]))
