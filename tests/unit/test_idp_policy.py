"""The exchange policy: the shipped file's decision table, and loading fails closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustloop.devstack.idp.policy import (
    DEFAULT_POLICY,
    NO_RULE,
    CareTeamPolicy,
    PatientFacts,
    PolicyAction,
    PolicyDecision,
    PolicyFileError,
    PolicyRequest,
    evaluate,
    load_policy,
    request_for,
)
from trustloop.identity.rar import AuthorizationDetail, patient_read, roster_read

ME = "clin-achen"
POLICY = load_policy()
ROSTER_OTHER = "a care team roster can be read only by its own clinician"
OFF_TEAM = "not on your care team"


def _deny(reason: str, rule: str) -> PolicyDecision:
    return PolicyDecision(False, reason, rule)


def _ask(
    action: PolicyAction,
    *,
    role: str | None = "physician",
    team: bool = True,
    sensitive: bool = False,
) -> PolicyRequest:
    return PolicyRequest(role, action, care_team=team, sensitive=sensitive)


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (_ask("list"), PolicyDecision(True, "own care team roster", "roster_own")),
        (_ask("list", role="nurse"), PolicyDecision(True, "own care team roster", "roster_own")),
        (_ask("list", team=False), _deny(ROSTER_OTHER, "not_own_roster")),
        (_ask("list", role=None), _deny(NO_RULE, "default_deny")),
        (_ask("read"), PolicyDecision(True, "on the clinician's care team", "care_team")),
        (_ask("read", role="nurse"), PolicyDecision(True, "on the clinician's care team", "care_team")),
        (_ask("read", team=False), _deny(OFF_TEAM, "not_care_team")),
        (_ask("read", team=False, sensitive=True), _deny(OFF_TEAM, "not_care_team")),
        (_ask("read", sensitive=True), PolicyDecision(True, "restricted patient on the clinician's care team", "step_up", ("step_up",))),
        (_ask("read", role="pharmacist"), _deny(NO_RULE, "default_deny")),
        (_ask("read", role=None), _deny(NO_RULE, "default_deny")),
        (_ask("write_note"), PolicyDecision(True, "note approved by the clinician", "write_note", ("consent",))),
        (_ask("write_note", sensitive=True), PolicyDecision(True, "note on a restricted patient, approved by the clinician", "write_note_sensitive", ("step_up", "consent"))),
        (_ask("write_note", team=False), _deny(OFF_TEAM, "not_care_team")),
        (_ask("update_medication"), PolicyDecision(True, "medication change approved by the clinician", "update_medication", ("consent",))),
        (_ask("update_medication", role="nurse"), _deny(NO_RULE, "default_deny")),
    ],
)  # fmt: skip
def test_the_shipped_policy_decides(
    request_: PolicyRequest, expected: PolicyDecision
) -> None:
    assert evaluate(POLICY, request_) == expected


@pytest.mark.parametrize(
    ("detail", "facts", "expected"),
    [
        (roster_read(ME), None, _ask("list", sensitive=False)),
        (roster_read("clin-bokafor"), None, _ask("list", team=False)),
        (patient_read("p1"), None, _ask("read", team=False)),
        (patient_read("p1"), PatientFacts(True, True), _ask("read", sensitive=True)),
    ],
)
def test_a_detail_maps_to_the_policys_terms(
    detail: AuthorizationDetail, facts: PatientFacts | None, expected: PolicyRequest
) -> None:
    """The roster's ``read`` is ``list``; an unknown patient is one off the team."""
    assert request_for(ME, "physician", detail, facts) == expected


def test_the_first_matching_rule_wins(tmp_path: Path) -> None:
    path = _write(tmp_path, RULE_ALLOW_ALL_READS + RULE_DENY_ALL_READS)
    decision = evaluate(load_policy(path), _ask("read"))
    assert decision == PolicyDecision(True, "everyone", "reads")


RULE_ALLOW_ALL_READS = """
  - name: reads
    actions: [read]
    reason: everyone
"""
RULE_DENY_ALL_READS = """
  - name: no_reads
    effect: deny
    actions: [read]
    reason: nobody
"""


def _write(tmp_path: Path, rules: str, header: str = "version: 1\nrules:") -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(header + rules)
    return path


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rules: [unclosed", "not valid YAML"),
        ("- just a list", "invalid policy"),
        ("version: 2\nrules:" + RULE_ALLOW_ALL_READS, "version"),
        ("version: 1\nrules: []", "rules"),
        ("version: 1\nrules:" + RULE_ALLOW_ALL_READS + RULE_ALLOW_ALL_READS, "unique"),
        ("version: 1\nrules:\n  - name: r\n    actions: [delete]\n    reason: x", "actions"),
        ("version: 1\nrules:\n  - name: r\n    actions: [read]\n    reason: x\n    when: y", "when"),
        ("version: 1\nrules:\n  - name: r\n    actions: [read]\n    reason: x\n    care_team: yes please", "care_team"),
        ("version: 1\nrules:\n  - name: r\n    actions: [read]\n    reason: x\n    roles: [admin]", "roles"),
        ("version: 1\nrules:\n  - name: r\n    actions: [read]", "reason"),
        ("version: 1\nrules:\n  - name: r\n    effect: deny\n    actions: [read]\n    reason: x\n    requires: [consent]", "cannot require"),
    ],
    ids=[
        "not-yaml", "not-a-mapping", "bad-version", "no-rules", "duplicate-names",
        "unknown-action", "unknown-field", "not-a-bool", "unknown-role",
        "missing-reason", "deny-with-requirement",
    ],
)  # fmt: skip
def test_an_invalid_policy_file_fails_closed_naming_file_and_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError, match=problem) as refused:
        load_policy(path)
    assert str(path) in str(refused.value)


def test_a_missing_policy_file_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")


def test_the_default_policy_is_the_shipped_file() -> None:
    assert DEFAULT_POLICY.name == "policy.yaml"
    assert load_policy() == load_policy(DEFAULT_POLICY)


class _Recording:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def role(self, clinician_sub: str) -> str | None:
        return "physician"

    async def patient(self, clinician_sub: str, patient_id: str) -> PatientFacts | None:
        self.asked.append((clinician_sub, patient_id))
        return PatientFacts(sensitive=False, on_care_team=True)


async def test_the_policy_looks_up_the_patient_named_by_the_detail() -> None:
    facts = _Recording()
    decision = await CareTeamPolicy(facts).decide(ME, patient_read("abc-123"))

    assert decision.allowed
    assert facts.asked == [(ME, "abc-123")]


async def test_a_roster_decision_reads_no_patient_facts() -> None:
    facts = _Recording()
    await CareTeamPolicy(facts).decide(ME, roster_read(ME))
    assert facts.asked == []
