"""RFC 9396 authorization details, the one wire type every part shares.

An OBO token names exactly one resource and one action (DESIGN.md, "the four-step
rhythm"). The model is strict: unknown fields, several actions or an identifier
that does not match its type are refused before anything is sent or granted.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

RarType = Literal["patient_record", "care_team_roster"]
Action = Literal["read", "write_note", "update_medication"]
# Writes name the exact change they were approved for (docs/contracts.md, "Writes").
WRITE_ACTIONS = frozenset({"write_note", "update_medication"})
_SHA256_HEX = r"^[0-9a-f]{64}$"
# The actions each type accepts: the roster is only ever read.
_ACTIONS: dict[str, frozenset[str]] = {
    "patient_record": frozenset({"read", "write_note", "update_medication"}),
    "care_team_roster": frozenset({"read"}),
}

# FHIR ids: [A-Za-z0-9\-\.]{1,64} (FHIR R4 datatypes, "id").
_FHIR_ID = r"[A-Za-z0-9\-.]{1,64}"
_IDENTIFIER = {
    "patient_record": re.compile(rf"Patient/{_FHIR_ID}"),
    "care_team_roster": re.compile(rf"Practitioner/{_FHIR_ID}"),
}


class AuthorizationDetail(BaseModel):
    """One RFC 9396 authorization detail: one type, one action, one identifier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: RarType
    actions: tuple[Action] = Field(min_length=1, max_length=1)
    identifier: str = Field(min_length=1, max_length=100)
    # A type-specific field (RFC 9396 §2): the SHA-256 (hex) of the one change a
    # write may make, so consent, the OBO token and the database all bind to it.
    change_sha256: str | None = Field(default=None, pattern=_SHA256_HEX)

    @model_validator(mode="after")
    def _identifier_matches_type(self) -> AuthorizationDetail:
        if not _IDENTIFIER[self.type].fullmatch(self.identifier):
            raise ValueError(f"identifier does not name a resource of type {self.type}")
        if self.action not in _ACTIONS[self.type]:
            raise ValueError(f"action {self.action} is not defined for {self.type}")
        if (self.action in WRITE_ACTIONS) != (self.change_sha256 is not None):
            raise ValueError("change_sha256 is required for writes and only for writes")
        return self

    @property
    def action(self) -> Action:
        return self.actions[0]

    @property
    def resource_id(self) -> str:
        """The id part of ``identifier`` (``Patient/<id>`` gives ``<id>``)."""
        return self.identifier.split("/", 1)[1]

    def wire(self) -> dict[str, object]:
        """The JSON object sent and signed: absent fields stay absent."""
        return self.model_dump(mode="json", exclude_none=True)

    def role_key(self) -> str:
        """The key Vault's verify-rar roles map to group roles: ``<type>|<action>``."""
        return f"{self.type}|{self.action}"


AuthorizationDetails = TypeAdapter(list[AuthorizationDetail])


def patient_read(patient_id: str) -> AuthorizationDetail:
    return AuthorizationDetail(
        type="patient_record", actions=("read",), identifier=f"Patient/{patient_id}"
    )


def patient_write(
    patient_id: str, action: Action, change_sha256: str
) -> AuthorizationDetail:
    """A write on one patient's record, bound to the digest of the exact change."""
    return AuthorizationDetail(
        type="patient_record",
        actions=(action,),
        identifier=f"Patient/{patient_id}",
        change_sha256=change_sha256,
    )


def roster_read(clinician_sub: str) -> AuthorizationDetail:
    return AuthorizationDetail(
        type="care_team_roster",
        actions=("read",),
        identifier=f"Practitioner/{clinician_sub}",
    )


def parse_details(raw: str | bytes | list[object]) -> list[AuthorizationDetail]:
    """Parse ``authorization_details`` from a form value (JSON) or a JWT claim."""
    if isinstance(raw, list):
        return AuthorizationDetails.validate_python(raw)
    return AuthorizationDetails.validate_json(raw)
