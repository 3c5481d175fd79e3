"""The exchange policy: a declarative YAML file the IdP evaluates for every exchange.

The file (docs/policy.md; the default ships as ``policy.yaml`` next to this module,
``TRUSTLOOP_IDP_POLICY`` names another) is a list of rules over the clinician's
role, the care-team relationship, the patient's sensitivity and the action. The
first rule that matches decides; when none matches the exchange is refused
(``default_deny``). A rule that allows but ``requires`` step-up and/or consent
allows on condition of the clinician's push approval: the exchange answers an
``mfa_challenge`` and the OBO follows the approval (see :mod:`.step_up`).

A file that cannot be read, parsed or validated raises :class:`PolicyFileError`
naming the file and the problem; the IdP does not start without a valid policy.

The facts (roles, care teams, sensitivity) come from the IdP's own directory,
provisioned through its admin API (:mod:`.directory`, :mod:`.admin`). An unknown
patient is treated like a patient off the care team, so a refusal never reveals
whether a patient exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trustloop.identity.rar import AuthorizationDetail

DEFAULT_POLICY = Path(__file__).with_name("policy.yaml")
NO_RULE = "no policy rule allows this"

PolicyAction = Literal["read", "list", "write_note", "update_medication"]
Role = Literal["physician", "nurse"]
Requirement = Literal["step_up", "consent"]


class PolicyFileError(RuntimeError):
    """The policy file is unreadable or invalid; the message names file and problem."""


class PolicyUnavailableError(Exception):
    """The policy's facts could not be read; the exchange fails closed."""


class Rule(BaseModel):
    """One rule; an omitted condition matches any value."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    effect: Literal["allow", "deny"] = "allow"
    actions: list[PolicyAction] = Field(min_length=1)
    roles: list[Role] | None = Field(default=None, min_length=1)
    care_team: bool | None = None
    sensitive: bool | None = None
    requires: list[Requirement] = Field(default_factory=list)
    reason: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _deny_requires_nothing(self) -> Rule:
        if self.effect == "deny" and self.requires:
            raise ValueError(f"rule {self.name}: a deny rule cannot require anything")
        return self

    def matches(self, request: PolicyRequest) -> bool:
        return (
            request.action in self.actions
            and (self.roles is None or request.role in self.roles)
            and (self.care_team is None or request.care_team == self.care_team)
            and (self.sensitive is None or request.sensitive == self.sensitive)
        )


class PolicyDocument(BaseModel):
    """The whole file: ``version: 1`` and an ordered, non-empty list of rules."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    version: Literal[1]
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> PolicyDocument:
        names = [rule.name for rule in self.rules]
        if len(names) != len(set(names)):
            raise ValueError("rule names must be unique")
        return self


@dataclass(frozen=True)
class PolicyRequest:
    """What one exchange asks, in the policy's terms."""

    role: str | None
    action: PolicyAction
    care_team: bool
    sensitive: bool


@dataclass(frozen=True)
class PolicyDecision:
    allowed: bool
    reason: str
    rule: str
    # Allowed only after the clinician approves a push for these.
    requires: tuple[Requirement, ...] = ()


@dataclass(frozen=True)
class PatientFacts:
    """What the directory knows of one patient, relative to one clinician."""

    sensitive: bool
    on_care_team: bool


class CareTeamFacts(Protocol):
    async def role(self, clinician_sub: str) -> str | None:
        """The clinician's provisioned role, or None if not provisioned."""
        ...

    async def patient(self, clinician_sub: str, patient_id: str) -> PatientFacts | None:
        """Facts for ``patient_id``, or None if no such patient is provisioned."""
        ...


def load_policy(path: Path | None = None) -> PolicyDocument:
    """Read and validate a policy file, else :class:`PolicyFileError`."""
    path = path or DEFAULT_POLICY
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError(f"{path}: cannot read the policy file ({exc})") from exc
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"{path}: not valid YAML ({exc})") from exc
    try:
        return PolicyDocument.model_validate(data)
    except ValidationError as exc:
        raise PolicyFileError(f"{path}: invalid policy: {_problems(exc)}") from exc


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'document'}: {err['msg']}"
        for err in exc.errors()
    )


def evaluate(policy: PolicyDocument, request: PolicyRequest) -> PolicyDecision:
    """First matching rule wins; no match is a refusal (pure; table-tested)."""
    rule = next((r for r in policy.rules if r.matches(request)), None)
    if rule is None:
        return PolicyDecision(False, NO_RULE, "default_deny")
    if rule.effect == "deny":
        return PolicyDecision(False, rule.reason, rule.name)

    return PolicyDecision(True, rule.reason, rule.name, tuple(rule.requires))


def request_for(
    clinician_sub: str,
    role: str | None,
    detail: AuthorizationDetail,
    facts: PatientFacts | None,
) -> PolicyRequest:
    """Map a detail to the policy's terms; the roster's ``read`` is ``list``.

    For the roster, ``care_team`` means "the roster is the clinician's own".
    """
    if detail.type == "care_team_roster":
        own = detail.identifier == f"Practitioner/{clinician_sub}"
        return PolicyRequest(role, "list", care_team=own, sensitive=False)
    if facts is None:
        return PolicyRequest(role, detail.action, care_team=False, sensitive=False)
    return PolicyRequest(
        role, detail.action, care_team=facts.on_care_team, sensitive=facts.sensitive
    )


class CareTeamPolicy:
    """Looks up the facts a detail needs and evaluates the policy."""

    def __init__(
        self, facts: CareTeamFacts, policy: PolicyDocument | None = None
    ) -> None:
        self._facts = facts
        self._policy = policy or load_policy()

    async def decide(
        self, clinician_sub: str, detail: AuthorizationDetail
    ) -> PolicyDecision:
        role = await self._facts.role(clinician_sub)
        facts = None
        if detail.type == "patient_record":
            facts = await self._facts.patient(clinician_sub, detail.resource_id)
        request = request_for(clinician_sub, role, detail, facts)
        return evaluate(self._policy, request)
