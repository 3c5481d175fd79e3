"""The ``verify-rar`` secrets engine: an OBO token in, an ephemeral database login out.

``POST /v1/verify-rar/creds/<role>`` with ``X-Vault-Token`` and ``{"obo_token":
<jwt>}``. The engine validates the OBO token itself (it does not trust the
caller's word for any of it):

- signature against the IdP's JWKS, ES256 pinned (RFC 8725 §3.1), ``iss`` = the
  IdP, ``aud`` = Vault, ``exp`` (RFC 7519 §4.1.4);
- ``jti`` single use: remembered until the token expires, so a replay is refused
  even after its lease ended: in memory here, and durably in
  ``access.redeemed_jtis``, written in the mint's transaction, so a restart of
  this process (or a second one on the same database) does not reopen the replay
  window; tokens issued before this process started are refused as well;
- ``act.sub`` (RFC 8693 §4.1) equal to the SPIFFE ID the client token was issued
  to: only the actor named by the IdP may redeem the token;
- exactly one RFC 9396 authorization detail, whose ``"<type>|<action>"`` the
  Vault role maps to group roles; anything unmapped is refused (403);
- a write (``write_note``, ``update_medication``) only with ``consent: true``, the
  claim the IdP sets on an OBO redeemed from the clinician's approved consent
  push: the policy file is not the only thing between a model and a write.

The grant row's ``stepped_up`` is true only when the OBO's ``acr`` is the IdP's
step-up value (``urn:trustloop:acr:step-up``); row-level security lets only such a
grant read a restricted patient's rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError

from trustloop.devstack.jti_ledger import JtiLedger
from trustloop.devstack.jwtcheck import Clock, JwksCache, JwtInvalidError, JwtValidator
from trustloop.devstack.vault.endpoint import Exchange
from trustloop.devstack.vault.errors import (
    VaultApiError,
    bad_request,
    permission_denied,
)
from trustloop.devstack.vault.lease_engine import (
    AlreadyRedeemedError,
    Credential,
    GrantSpec,
    LeaseEngine,
    role_name_for,
)
from trustloop.devstack.vault.leases import Lease, LeaseTable, new_lease_id
from trustloop.identity.rar import AuthorizationDetail, parse_details

log = structlog.get_logger(__name__)

MOUNT = "verify-rar"
MAX_LEASE_S = 300
IAT_LEEWAY_S = 5
STEP_UP_ACR = "urn:trustloop:acr:step-up"
WRITE_ACTIONS = frozenset({"write_note", "update_medication"})

# Vault role -> "<rar type>|<action>" -> PostgreSQL group roles. Writers are not
# readers (least privilege): a note writer reads back only its own note, a
# medication writer gets the new and previous resources from the function.
ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    "clinical": {
        "patient_record|read": ("clinical_reader",),
        "care_team_roster|read": ("clinical_reader",),
        "patient_record|write_note": ("clinical_note_writer",),
        "patient_record|update_medication": ("clinical_medication_writer",),
    },
}


@dataclass(frozen=True)
class VerifiedObo:
    """The parts of a valid OBO token the engine acts on."""

    jti: str
    subject: str
    actor: str
    detail: AuthorizationDetail
    expires_at: float
    stepped_up: bool = False


class OboVerifier:
    """Validates an OBO token for one caller (the actor)."""

    def __init__(
        self,
        keys: JwksCache,
        *,
        issuer: str,
        audience: str,
        clock: Clock,
        issued_after: float,
    ) -> None:
        self._validator = JwtValidator(
            keys, audience=audience, issuer=issuer, clock=clock
        )
        self._ledger = JtiLedger(clock, grace_s=IAT_LEEWAY_S)
        self._clock = clock
        self._issued_after = issued_after

    def verify(self, token: str, *, actor: str) -> VerifiedObo:
        """The verified token, or 403 with a spec-level reason."""
        try:
            claims = self._validator.verify(token)
        except JwtInvalidError as exc:
            raise permission_denied(str(exc)) from exc
        jti, exp = self._single_use(claims)

        act = claims.get("act")
        if not isinstance(act, dict) or act.get("sub") != actor:
            raise permission_denied("invalid token: actor does not match caller")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise permission_denied("invalid token: missing sub")
        detail = _one_detail(claims.get("authorization_details"))
        if detail.action in WRITE_ACTIONS and claims.get("consent") is not True:
            raise permission_denied("invalid token: a write needs the consent claim")
        stepped_up = claims.get("acr") == STEP_UP_ACR
        return VerifiedObo(jti, subject, actor, detail, exp, stepped_up)

    def _single_use(self, claims: dict[str, Any]) -> tuple[str, float]:
        jti, exp, iat = claims.get("jti"), claims.get("exp"), claims.get("iat")
        if not isinstance(jti, str) or not _is_uuid(jti):
            raise permission_denied("invalid token: jti must be a UUID")
        if not isinstance(iat, int | float) or iat < self._issued_after:
            raise permission_denied("invalid token: issued before this engine started")
        if not isinstance(exp, int | float) or exp <= self._clock():
            raise permission_denied("invalid token: expired")
        if not self._ledger.first_use(jti, float(exp)):
            raise permission_denied("invalid token: jti already used")
        return jti, float(exp)


class VerifyRarEngine:
    """Handles ``creds/<role>``: verify, map, mint inside one transaction."""

    def __init__(
        self,
        verifier: OboVerifier,
        engine: LeaseEngine,
        leases: LeaseTable,
        *,
        clock: Clock,
        roles: dict[str, dict[str, tuple[str, ...]]] = ROLES,
    ) -> None:
        self._verifier = verifier
        self._engine = engine
        self._leases = leases
        self._clock = clock
        self._roles = roles

    def creds(self, exchange: Exchange) -> None:
        caller = exchange.require_auth()
        role = exchange.params.get("role", "")
        mapping = self._roles.get(role)
        if mapping is None:
            raise bad_request(f"unknown role: {role}")
        obo_token = exchange.data.get("obo_token")
        if not isinstance(obo_token, str) or not obo_token:
            raise bad_request("missing obo_token")

        obo = self._verifier.verify(obo_token, actor=caller.spiffe_id)
        exchange.record.jti = obo.jti
        groups = mapping.get(obo.detail.role_key())
        if groups is None:
            raise permission_denied("authorization detail not allowed by this role")
        lease = self._lease_for(obo, role)
        exchange.record.lease_id = lease.lease_id

        def record_answer(credential: Credential) -> None:
            exchange.respond(200, _creds_body(exchange, lease, credential, self._now()))

        try:
            self._engine.mint(_grant(obo, lease, groups), record_answer)
        except AlreadyRedeemedError as exc:
            raise permission_denied("invalid token: jti already used") from exc
        self._leases.add(lease)
        log.info(
            "lease_issued", jti=obo.jti, lease_id=lease.lease_id, role=lease.role_name
        )

    def _lease_for(self, obo: VerifiedObo, role: str) -> Lease:
        now = self._now()
        expires = min(obo.expires_at, now + MAX_LEASE_S)
        return Lease(
            lease_id=new_lease_id(MOUNT, role),
            role_name=role_name_for(obo.jti),
            jti=obo.jti,
            owner=obo.actor,
            issue_time=datetime.fromtimestamp(now, UTC),
            expire_time=datetime.fromtimestamp(expires, UTC),
        )

    def _now(self) -> float:
        return self._clock()


def _one_detail(raw: object) -> AuthorizationDetail:
    if not isinstance(raw, list) or len(raw) != 1:
        raise permission_denied("invalid token: exactly one authorization detail")
    try:
        return parse_details(raw)[0]
    except ValidationError as exc:
        raise permission_denied(
            "invalid token: malformed authorization detail"
        ) from exc


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _grant(obo: VerifiedObo, lease: Lease, groups: tuple[str, ...]) -> GrantSpec:
    return GrantSpec(
        role_name=lease.role_name,
        jti=obo.jti,
        clinician_sub=obo.subject,
        rar_type=obo.detail.type,
        action=obo.detail.action,
        resource_id=obo.detail.resource_id,
        stepped_up=obo.stepped_up,
        expires_at=lease.expire_time,
        group_roles=groups,
        change_sha256=obo.detail.change_sha256,
        token_expires_at=datetime.fromtimestamp(obo.expires_at, UTC),
    )


def _creds_body(
    exchange: Exchange, lease: Lease, credential: Credential, now: float
) -> dict[str, Any]:
    if lease.expire_time.timestamp() <= now:
        raise VaultApiError(403, "invalid token: expired")
    return {
        "request_id": exchange.record.id,
        "lease_id": lease.lease_id,
        "lease_duration": int(lease.expire_time.timestamp() - now),
        "renewable": False,
        "data": {
            "username": credential.username,
            "password": credential.password,
            "jti": lease.jti,
        },
        "wrap_info": None,
        "warnings": None,
        "auth": None,
    }
