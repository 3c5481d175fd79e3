"""The demo care-team assignment: a function of the patient id alone."""

from __future__ import annotations

from trustloop.devstack.demo import CLINICIANS, care_team_for, is_sensitive

IDS = [f"patient-{n}" for n in range(7000)]


def test_care_team_is_one_or_two_distinct_demo_clinicians() -> None:
    teams = [care_team_for(pid) for pid in IDS]

    assert {len(team) for team in teams} == {1, 2}
    assert all(len(set(team)) == len(team) for team in teams)
    assert {c for team in teams for c in team} == set(CLINICIANS)


def test_assignment_is_a_known_function_of_the_patient_id() -> None:
    """Known answers for two bundled samples: stable across processes and loads."""
    lupe = "31052ccc-7804-4268-b953-741322eed47e"
    malcolm = "e2d08f86-4813-4f3a-971f-87c09e0ec0c7"

    assert [c.username for c in care_team_for(lupe)] == ["achen"]
    assert is_sensitive(lupe)
    assert [c.username for c in care_team_for(malcolm)] == ["cwhite", "achen"]
    assert not is_sensitive(malcolm)


def test_about_one_patient_in_seven_is_sensitive() -> None:
    share = sum(map(is_sensitive, IDS)) / len(IDS)

    assert 0.12 < share < 0.17
