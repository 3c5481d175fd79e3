"""Step-up for a restricted patient, on IBM Verify's shapes (docs/contracts.md, "IdP").

1. The token exchange answers a decision that ``requires`` step-up or consent
   (a write: the same push, with the change in the message) with an RFC
   6749 §5.1-shaped 200 whose ``scope`` is ``mfa_challenge``; its ``access_token``
   is an IdP-signed JWT (``typ`` ``mfa-challenge+jwt``, ``aud`` = the issuer)
   naming ``sub``, the requested ``authorization_details`` and the actor.
2. With that token as bearer: ``GET /v2.0/factors`` lists the clinician's enrolled
   factors (one push "signature" authenticator each), and ``POST
   /v1.0/authenticators/{id}/verifications`` starts a push whose message the IdP
   writes from the challenge ("Read the chart of <patient id>?"); the client's own
   ``transactionData.message`` is not trusted. ``GET`` of the transaction answers
   its ``state``: ``PENDING``, ``VERIFY_SUCCESS`` (with a signed ``assertion``),
   ``VERIFY_FAILED`` or ``EXPIRED`` (no answer within ``step_up_timeout_s``).
3. The jwt-bearer grant (RFC 7523 §2.1) redeems the assertion, re-sending
   ``authorization_details`` (they must equal the assertion's) with the MCP
   server's client assertion, for the OBO token with ``acr``
   ``urn:trustloop:acr:step-up``, ``amr: ["push"]`` and ``auth_time``.

Where Verify's documentation left a detail open we guessed, and say so: Verify's
factor ids and ``authenticatorId``, the 202 answer of a started verification and
the ``assertion`` field of an approved transaction (Verify returns a signed JWT
there when the request asked for it) follow the documented field names; the claim
names in the challenge and the assertion are ours.

A challenge stays tied to the request it answered. It names the subject token
(``subject_token``: its ``jti``, ``sid`` and ``exp``), and starts one push only.
Starting the push and redeeming the approval both check that this token is still
active (not expired, not revoked, its sign-in not ended: a logged-out clinician's
pending approval is worthless), and the redemption asks the policy again, so a
clinician taken off the care team, or a patient whose rules changed, while the push
waited gets ``access_denied``, not an OBO.

A consent push (writes) is the same flow; its OBO also carries ``consent: true``.
The verification request must carry the exact change (``transactionData.
additionalData: [{"name": "change", "value": <text>}]``) whose SHA-256 is the
challenge's ``change_sha256`` (400 ``invalid_request`` otherwise, and for a write
without it); the IdP then shows that change in the message it writes. The change
text lives in memory with the push only: audit records carry ``change_sha256``.

Audit events (ids only): ``step_up_required`` (with ``requires``), ``step_up_started``,
``step_up_approved``, ``step_up_denied``, ``step_up_timed_out``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from pydantic import ValidationError

from trustloop.audit.chain import AuditLog
from trustloop.devstack.idp.client_auth import ClientAuthenticator
from trustloop.devstack.idp.consent import consent_change, push_message
from trustloop.devstack.idp.errors import OAuthProblem, invalid_request
from trustloop.devstack.idp.keys import SigningKeys
from trustloop.devstack.idp.policy import CareTeamPolicy, PolicyUnavailableError
from trustloop.devstack.idp.tokens import AccessTokens, TokenIssuer
from trustloop.devstack.jti_ledger import JtiLedger
from trustloop.devstack.jwtcheck import (
    LEEWAY_S,
    Clock,
    JwksCache,
    JwtInvalidError,
    JwtValidator,
)
from trustloop.identity.oauth import JWT_TOKEN_TYPE
from trustloop.identity.rar import AuthorizationDetail, parse_details

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MFA_CHALLENGE_SCOPE = "mfa_challenge"
STEP_UP_ACR = "urn:trustloop:acr:step-up"
CHALLENGE_TYP = "mfa-challenge+jwt"
ASSERTION_TYP = "step-up+jwt"
CHALLENGE_TTL_S = 300
ASSERTION_TTL_S = 60
MAX_PENDING_PER_CLINICIAN = 10  # more is a client gone wrong, or flooding a phone

State = Literal["PENDING", "VERIFY_SUCCESS", "VERIFY_FAILED", "EXPIRED"]
AutoAnswer = Literal["off", "approve", "deny"]

log = structlog.get_logger("trustloop.devstack.idp")


class BearerError(Exception):
    """No valid mfa_challenge bearer token: RFC 6750 §3 ``invalid_token``."""


class NotFoundError(Exception):
    """No such factor or transaction for this bearer (which one: not said)."""


@dataclass
class Push:
    """One push verification; ``assertion`` is set once approved."""

    id: str
    sub: str
    authenticator_id: str
    challenge_jti: str
    actor: str
    details: list[dict[str, Any]]
    message: str
    created: float
    expires: float
    state: State = "PENDING"
    assertion: str | None = field(default=None, repr=False)
    requires: list[str] = field(default_factory=list)
    subject: dict[str, Any] = field(default_factory=dict)  # jti, sid, exp

    def body(self, base: str) -> dict[str, Any]:
        """The transaction as Verify's verification answer (guessed subset)."""
        uri = f"{base}/v1.0/authenticators/{self.authenticator_id}/verifications"
        answer: dict[str, Any] = {
            "id": self.id,
            "authenticatorId": self.authenticator_id,
            "state": self.state,
            "creationTime": _iso(self.created),
            "expiryTime": _iso(self.expires),
            "transactionData": {"message": self.message},
            "_links": {"self": {"href": f"{uri}/{self.id}"}},
        }
        if self.assertion is not None:
            answer["assertion"] = self.assertion
        return answer


def authenticator_id(sub: str) -> str:
    """Each demo clinician has one push authenticator, named from the ``sub``."""
    return f"push-{sub}"


class StepUp:
    """Challenges, push transactions and the jwt-bearer grant that redeems them."""

    def __init__(
        self,
        *,
        keys: SigningKeys,
        issuer_url: str,
        tokens: TokenIssuer,
        access_tokens: AccessTokens,
        policy: CareTeamPolicy,
        clients: ClientAuthenticator,
        exchange_clients: frozenset[str],
        vault_audience: str,
        audit: AuditLog,
        timeout_s: float,
        auto: AutoAnswer = "off",
        clock: Clock = time.time,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("the step-up timeout must be positive")
        self._keys = keys
        self._issuer = issuer_url
        self._tokens = tokens
        self._access_tokens = access_tokens
        self._policy = policy
        self._clients = clients
        self._exchange_clients = exchange_clients
        self._vault_audience = vault_audience
        self._audit = audit
        self._timeout_s = timeout_s
        self._auto = auto
        self._clock = clock
        self._pushes: dict[str, Push] = {}
        self._started = JtiLedger(clock, grace_s=LEEWAY_S)  # one push per challenge
        self._redeemed = JtiLedger(clock, grace_s=LEEWAY_S)
        self._lock = threading.Lock()

    # -- 1. the challenge --------------------------------------------------------

    def challenge(
        self,
        *,
        sub: str,
        actor: str,
        details: list[dict[str, Any]],
        rule: str,
        subject: Mapping[str, Any],
        requires: Sequence[str] = ("step_up",),
    ) -> dict[str, Any]:
        """The exchange's answer when the policy requires step-up or consent.

        ``subject`` holds the claims of the access token the exchange presented.
        """
        now = int(self._clock())
        claims = {
            "iss": self._issuer,
            "sub": sub,
            "aud": self._issuer,
            "act": {"sub": actor},
            "authorization_details": details,
            "scope": MFA_CHALLENGE_SCOPE,
            "requires": list(requires),
            "subject_token": {
                "jti": subject["jti"],
                "sid": subject.get("sid"),
                "exp": subject["exp"],
            },
            "iat": now,
            "exp": now + CHALLENGE_TTL_S,
            "jti": str(uuid.uuid4()),
        }
        token = self._keys.sign(claims, typ=CHALLENGE_TYP)
        self._audit.append(
            "step_up_required",
            jti=claims["jti"],
            subject_jti=subject["jti"],
            sub=sub,
            actor=actor,
            rule=rule,
            requires=list(requires),
        )
        log.info("step_up_required", jti=claims["jti"], sub=sub, rule=rule)
        # Verify's shape (policyauth grant docs): allowedFactors and grant_id too.
        return {
            "access_token": token,
            "token_type": "Bearer",
            "scope": MFA_CHALLENGE_SCOPE,
            "expires_in": CHALLENGE_TTL_S,
            "allowedFactors": ["signature"],
            "grant_id": claims["jti"],
        }

    # -- 2. factors and push transactions ----------------------------------------

    def factors(self, authorization: str | None) -> dict[str, Any]:
        """``GET /v2.0/factors``: the bearer's one push authenticator."""
        sub = self._bearer(authorization)["sub"]
        factor = {
            "id": authenticator_id(sub),
            "type": "signature",
            "userId": sub,
            "enabled": True,
            "validated": True,
            "attributes": {
                "authenticatorId": authenticator_id(sub),
                "deviceName": "trustloop authenticator",
                "subType": "userPresence",
            },
        }
        return {"count": 1, "total": 1, "limit": 200, "factors": [factor]}

    def start(
        self, authorization: str | None, authenticator: str, body: bytes = b""
    ) -> dict[str, Any]:
        """``POST /v1.0/authenticators/{id}/verifications``: a new pending push.

        ``body`` is the verification request; only a write's change is read from
        it (the client's own message is not trusted).
        """
        claims = self._bearer(authorization)
        if authenticator != authenticator_id(claims["sub"]):
            raise NotFoundError
        details = claims["authorization_details"]
        change = consent_change(body, details)
        self._forget_finished()
        if len(self.pending(claims["sub"])) >= MAX_PENDING_PER_CLINICIAN:
            raise invalid_request("too many verifications are waiting for an answer")
        if not self._started.first_use(claims["jti"], claims["exp"]):
            raise invalid_request("this challenge has already started a verification")
        now = self._clock()
        push = Push(
            id=str(uuid.uuid4()),
            sub=claims["sub"],
            authenticator_id=authenticator,
            challenge_jti=claims["jti"],
            actor=claims["act"]["sub"],
            details=details,
            message=push_message(details, change),
            created=now,
            expires=now + self._timeout_s,
            requires=list(claims.get("requires") or ["step_up"]),
            subject=claims["subject_token"],
        )
        with self._lock:
            self._pushes[push.id] = push
        self._audit.append(
            "step_up_started",
            transaction_id=push.id,
            sub=push.sub,
            actor=push.actor,
            requires=push.requires,
            change_sha256=details[0].get("change_sha256"),
        )
        if self._auto != "off":  # dev-only; Settings refuses it outside local
            self.answer(push.sub, push.id, approve=self._auto == "approve")
        return self._current(push).body(self._issuer)

    def transaction(
        self, authorization: str | None, authenticator: str, transaction_id: str
    ) -> dict[str, Any]:
        """``GET`` of one transaction started with the same challenge."""
        claims = self._bearer(authorization)
        with self._lock:
            push = self._pushes.get(transaction_id)
        if push is None or push.challenge_jti != claims["jti"]:
            raise NotFoundError
        if push.authenticator_id != authenticator:
            raise NotFoundError
        return self._current(push).body(self._issuer)

    def pending(self, sub: str) -> list[Push]:
        """``sub``'s pending pushes, oldest first (the authenticator's list).

        A push whose sign-in has ended is not shown: its approval could not be
        redeemed, and answering it would only write a misleading audit line.
        """
        with self._lock:
            mine = [p for p in self._pushes.values() if p.sub == sub]
        current = [self._current(p) for p in sorted(mine, key=lambda p: p.created)]
        return [
            p
            for p in current
            if p.state == "PENDING"
            and self._subject_active({"subject_token": p.subject})
        ]

    def _forget_finished(self) -> None:
        """Drop pushes no one can use any more: expired, and their assertion too."""
        horizon = self._clock() - ASSERTION_TTL_S - LEEWAY_S
        with self._lock:
            for key in [k for k, p in self._pushes.items() if p.expires < horizon]:
                del self._pushes[key]

    def answer(self, sub: str, transaction_id: str | None, *, approve: bool) -> Push:
        """Approve or deny ``sub``'s push (the oldest pending one when no id)."""
        pending = self.pending(sub)
        if transaction_id is not None:
            pending = [p for p in pending if p.id == transaction_id]
        if not pending:
            raise NotFoundError
        push = pending[0]
        with self._lock:
            if push.state != "PENDING":
                raise NotFoundError
            push.state = "VERIFY_SUCCESS" if approve else "VERIFY_FAILED"
            if approve:
                push.assertion = self._assertion(push)
        event = "step_up_approved" if approve else "step_up_denied"
        self._audit.append(
            event,
            transaction_id=push.id,
            sub=sub,
            actor=push.actor,
            requires=push.requires,
        )
        log.info(event, transaction_id=push.id, sub=sub)
        return push

    def _current(self, push: Push) -> Push:
        """``push`` with ``EXPIRED`` applied once its time has run out (audited once)."""
        with self._lock:
            expired = push.state == "PENDING" and self._clock() >= push.expires
            if expired:
                push.state = "EXPIRED"
        if expired:
            self._audit.append(
                "step_up_timed_out",
                transaction_id=push.id,
                sub=push.sub,
                requires=push.requires,
            )
            log.info("step_up_timed_out", transaction_id=push.id, sub=push.sub)
        return push

    def _assertion(self, push: Push) -> str:
        now = int(self._clock())
        claims = {
            "iss": self._issuer,
            "sub": push.sub,
            "aud": self._issuer,
            "act": {"sub": push.actor},
            "authorization_details": push.details,
            "txn": push.id,
            "requires": push.requires,
            "subject_token": push.subject,
            # Any approved push is a fresh second factor, consent included.
            "acr": STEP_UP_ACR,
            "amr": ["push"],
            "auth_time": now,
            "iat": now,
            "exp": now + ASSERTION_TTL_S,
            "jti": str(uuid.uuid4()),
        }
        return self._keys.sign(claims, typ=ASSERTION_TYP)

    def _bearer(self, authorization: str | None) -> dict[str, Any]:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise BearerError
        try:
            claims = self._validator().verify(token.strip(), typ=CHALLENGE_TYP)
        except JwtInvalidError as exc:
            raise BearerError from exc
        if not isinstance(claims.get("sub"), str) or "act" not in claims:
            raise BearerError
        if not self._subject_active(claims):
            raise BearerError  # the sign-in behind this challenge has ended
        return claims

    def _subject_active(self, claims: Mapping[str, Any]) -> bool:
        """The access token the challenge answered is still active (see module)."""
        subject = claims.get("subject_token")
        if not isinstance(subject, dict):
            return False
        jti, sid, exp = subject.get("jti"), subject.get("sid"), subject.get("exp")
        if not isinstance(jti, str) or not isinstance(exp, int | float):
            return False
        return self._access_tokens.still_active(
            jti, sid if isinstance(sid, str) else None, exp
        )

    def _validator(self) -> JwtValidator:
        cache = JwksCache(keys=self._keys.public_keys())
        return JwtValidator(
            cache, audience=self._issuer, issuer=self._issuer, clock=self._clock
        )

    # -- 3. the jwt-bearer grant -------------------------------------------------

    async def __call__(self, form: Mapping[str, str]) -> dict[str, Any]:
        """RFC 7523 §2.1: the approved assertion for the stepped-up OBO token."""
        try:
            return await self._redeem(form)
        except OAuthProblem as problem:
            self._audit.append(
                "exchange_denied",
                rule="step_up_assertion",
                error=problem.error,
                reason=problem.description,
            )
            raise

    async def _redeem(self, form: Mapping[str, str]) -> dict[str, Any]:
        client = await self._clients.workload(form)
        if client not in self._exchange_clients:
            raise OAuthProblem(
                "unauthorized_client", "this client may not redeem assertions"
            )
        claims = self._redeemable(form.get("assertion", ""), client)
        detail = _same_details(form.get("authorization_details", ""), claims)
        if not self._subject_active(claims):
            raise OAuthProblem(
                "invalid_grant", "the sign-in behind this approval has ended"
            )
        rule = await self._still_allowed(claims, detail)
        # Used up only now: a refusal above for a passing reason (503) leaves
        # the clinician's approval redeemable by the retry it invites.
        if not self._redeemed.first_use(claims["jti"], claims["exp"]):
            raise OAuthProblem("invalid_grant", "the assertion was already used")

        obo = self._tokens.obo_token(
            sub=claims["sub"],
            actor=client,
            audience=self._vault_audience,
            details=[detail],
            extra={
                "acr": claims["acr"],
                "amr": claims["amr"],
                "auth_time": claims["auth_time"],
                **({"consent": True} if "consent" in claims["requires"] else {}),
            },
        )
        return self._granted(obo.token, obo.claims, claims, rule)

    async def _still_allowed(
        self, claims: Mapping[str, Any], detail: AuthorizationDetail
    ) -> str:
        """Ask the policy again: the approval covers what it requires now.

        Answers the rule that decided, which the grant's audit line names.
        """
        try:
            decision = await self._policy.decide(claims["sub"], detail)
        except PolicyUnavailableError as exc:
            raise OAuthProblem(
                "temporarily_unavailable", "the policy cannot be evaluated now", 503
            ) from exc
        if not decision.allowed:
            raise OAuthProblem(
                "access_denied", f"{detail.identifier}: {decision.reason}", 403
            )
        if not set(decision.requires) <= set(claims["requires"]):
            raise OAuthProblem(
                "access_denied",
                f"{detail.identifier}: the approval does not cover what is required",
                403,
            )
        return decision.rule

    def _redeemable(self, assertion: str, client: str) -> dict[str, Any]:
        """An unexpired assertion of ours for this client (single use: the caller)."""
        try:
            claims = self._validator().verify(assertion, typ=ASSERTION_TYP)
        except JwtInvalidError as exc:
            raise OAuthProblem("invalid_grant", "the assertion is invalid") from exc
        if claims.get("act", {}).get("sub") != client:
            raise OAuthProblem("invalid_grant", "the assertion is for another client")
        return claims

    def _granted(
        self,
        token: str,
        claims: dict[str, Any],
        assertion: Mapping[str, Any],
        rule: str,
    ) -> dict[str, Any]:
        granted = claims["authorization_details"]
        self._audit.append(
            "token_exchanged",
            jti=claims["jti"],
            client_id=claims["client_id"],
            sub=claims["sub"],
            actor=claims["act"]["sub"],
            rule=rule,
            requires=list(assertion["requires"]),
            granted=granted,
            aud=claims["aud"],
            act=claims["act"],
            acr=claims["acr"],
            amr=claims["amr"],
            transaction_id=assertion["txn"],
            subject_jti=assertion["subject_token"]["jti"],
            iat=claims["iat"],
            exp=claims["exp"],
        )
        log.info("token_exchanged", jti=claims["jti"], sub=claims["sub"], acr=True)
        return {
            "access_token": token,
            "issued_token_type": JWT_TOKEN_TYPE,
            "token_type": "N_A",
            "expires_in": int(claims["exp"] - claims["iat"]),
            "authorization_details": granted,
        }


def _same_details(raw: str, claims: dict[str, Any]) -> AuthorizationDetail:
    """The re-sent ``authorization_details`` must be exactly the approved ones."""
    if not raw:
        raise invalid_request("authorization_details is required")
    try:
        details = parse_details(raw)
        approved = parse_details(json.dumps(claims["authorization_details"]))
    except (ValidationError, ValueError) as exc:
        raise OAuthProblem(
            "invalid_authorization_details", "authorization_details is malformed"
        ) from exc
    if details != approved or len(details) != 1:
        raise OAuthProblem(
            "invalid_authorization_details", "authorization_details were not approved"
        )
    return details[0]


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))
