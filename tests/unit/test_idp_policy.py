"""The care-team policy's decision table (first slice)."""

from __future__ import annotations

import pytest

from trustloop.devstack.idp.policy import (
    NOT_ON_CARE_TEAM,
    NOT_YOUR_ROSTER,
    STEP_UP_REQUIRED,
    CareTeamPolicy,
    PatientFacts,
    PolicyDecision,
    decide,
)
from trustloop.identity.rar import AuthorizationDetail, patient_read, roster_read

ME = "clin-achen"
MINE = PatientFacts(sensitive=False, on_care_team=True)
NOT_MINE = PatientFacts(sensitive=False, on_care_team=False)
MINE_RESTRICTED = PatientFacts(sensitive=True, on_care_team=True)
NOT_MINE_RESTRICTED = PatientFacts(sensitive=True, on_care_team=False)


OWN_ROSTER = PolicyDecision(True, "own care team roster", "roster_own")
OTHER_ROSTER = PolicyDecision(False, NOT_YOUR_ROSTER, "roster_own")
ON_TEAM = PolicyDecision(True, "on the clinician's care team", "care_team")
OFF_TEAM = PolicyDecision(False, NOT_ON_CARE_TEAM, "care_team")
STEP_UP = PolicyDecision(False, STEP_UP_REQUIRED, "step_up")
P1 = patient_read("p1")


@pytest.mark.parametrize(
    ("detail", "facts", "expected"),
    [
        (roster_read(ME), None, OWN_ROSTER),
        (roster_read("clin-bokafor"), None, OTHER_ROSTER),
        (P1, MINE, ON_TEAM),
        (P1, NOT_MINE, OFF_TEAM),
        (P1, None, OFF_TEAM),
        (P1, MINE_RESTRICTED, STEP_UP),
        (P1, NOT_MINE_RESTRICTED, OFF_TEAM),
    ],
    ids=[
        "own-roster",
        "other-roster",
        "care-team",
        "off-care-team",
        "unknown-patient",
        "restricted-on-team",
        "restricted-off-team",
    ],
)
def test_decision_table(
    detail: AuthorizationDetail, facts: PatientFacts | None, expected: PolicyDecision
) -> None:
    assert decide(ME, detail, facts) == expected


def test_an_unknown_patient_is_refused_exactly_like_one_off_the_care_team() -> None:
    """A refusal never reveals whether the patient exists."""
    unknown = decide(ME, patient_read("p1"), None)
    off_team = decide(ME, patient_read("p1"), NOT_MINE)
    assert unknown == off_team


class _Recording:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def patient(self, clinician_sub: str, patient_id: str) -> PatientFacts | None:
        self.asked.append((clinician_sub, patient_id))
        return MINE


async def test_the_policy_looks_up_the_patient_named_by_the_detail() -> None:
    facts = _Recording()
    decision = await CareTeamPolicy(facts).decide(ME, patient_read("abc-123"))

    assert decision.allowed
    assert facts.asked == [(ME, "abc-123")]


async def test_a_roster_decision_reads_no_patient_facts() -> None:
    facts = _Recording()
    await CareTeamPolicy(facts).decide(ME, roster_read(ME))
    assert facts.asked == []
