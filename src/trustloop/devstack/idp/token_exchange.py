"""RFC 8693 token exchange with RFC 9396 authorization details: the OBO grant.

The MCP server presents the clinician's access token (``subject_token``) and its own
JWT-SVID (``actor_token``), authenticates with a JWT-SVID client assertion, and asks
for a token for Vault (``audience``) carrying exactly one authorization detail. The
IdP is the policy decision point: it grants exactly what was asked or refuses.

Error codes, as the specs name them:

- ``invalid_client`` (401): the client assertion failed (RFC 6749 §5.2).
- ``unauthorized_client``: the client may not exchange tokens (RFC 6749 §5.2).
- ``invalid_request``: a missing or unsupported parameter, or a ``subject_token`` or
  ``actor_token`` that is "invalid for any reason, or unacceptable based on
  policy" (RFC 8693 §2.2.2), including a subject whose ``may_act`` does not name
  the actor (RFC 8693 §4.4).
- ``invalid_grant``: an ``actor_token`` whose ``jti`` was already presented: the
  actor token is single-use within its lifetime (client assertions are not: RFC 7523
  §3 lets the server choose, and a workload reuses its cached JWT-SVID for them).
- ``invalid_target``: an ``audience`` other than Vault, or any ``resource`` (RFC
  8693 §2.2.2).
- ``invalid_authorization_details``: anything but a JSON array of exactly one
  detail of a registered type with no unknown fields (RFC 9396 §5).
- ``access_denied`` (403): the policy refused; the description names the resource
  and the reason.

A decision that ``requires`` step-up or consent is answered with an
``mfa_challenge`` token instead of the OBO (:mod:`.step_up`); the OBO comes from
the jwt-bearer grant once the clinician approves the push.

Every exchange, granted or refused, is one audit event (``token_exchanged`` or
``exchange_denied``) and one INFO log line; neither ever holds a token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

import structlog
from pydantic import ValidationError

from trustloop.audit.chain import AuditLog
from trustloop.devstack.idp.client_auth import ClientAuthenticator
from trustloop.devstack.idp.errors import OAuthProblem, invalid_request
from trustloop.devstack.idp.policy import (
    CareTeamPolicy,
    PolicyDecision,
    PolicyUnavailableError,
)
from trustloop.devstack.idp.step_up import StepUp
from trustloop.devstack.idp.tokens import AccessTokens, TokenIssuer
from trustloop.devstack.jti_ledger import JtiLedger
from trustloop.devstack.jwtcheck import LEEWAY_S, Clock, JwtInvalidError
from trustloop.identity.oauth import (
    ACCESS_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE_GRANT,
)
from trustloop.identity.rar import AuthorizationDetail, RarType, parse_details

GRANT_TYPE = TOKEN_EXCHANGE_GRANT

log = structlog.get_logger("trustloop.devstack.idp")


@dataclass
class _Attempt:
    """What is known of one exchange so far: the audit record's fields."""

    client: str | None = None
    sub: str | None = None
    subject_jti: str | None = None
    actor: str | None = None
    requested: list[dict[str, Any]] | None = None
    rule: str = "request"

    def fields(self) -> dict[str, Any]:
        return {
            "client_id": self.client,
            "sub": self.sub,
            "subject_jti": self.subject_jti,
            "actor": self.actor,
            "requested": self.requested,
            "rule": self.rule,
        }


class TokenExchange:
    """The token-exchange grant of ``/oauth2/token``."""

    def __init__(
        self,
        *,
        clients: ClientAuthenticator,
        exchange_clients: frozenset[str],
        access_tokens: AccessTokens,
        issuer: TokenIssuer,
        vault_audience: str,
        policy: CareTeamPolicy,
        audit: AuditLog,
        step_up: StepUp | None = None,
        clock: Clock = time.time,
    ) -> None:
        if not vault_audience or not exchange_clients:
            raise ValueError("token exchange needs Vault's audience and its clients")
        self._clients = clients
        self._exchange_clients = exchange_clients
        self._access_tokens = access_tokens
        self._issuer = issuer
        self._vault_audience = vault_audience
        self._policy = policy
        self._audit = audit
        self._step_up = step_up
        # The validator accepts a token up to LEEWAY_S past exp: keep it as long.
        self._actor_jtis = JtiLedger(clock, grace_s=LEEWAY_S)

    async def __call__(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The RFC 8693 §2.2.1 answer, or :class:`OAuthProblem` (always audited)."""
        attempt = _Attempt()
        try:
            answer = await self._exchange(form, attempt)
        except OAuthProblem as problem:
            self._denied(attempt, problem)
            raise
        return answer

    async def _exchange(
        self, form: Mapping[str, str], attempt: _Attempt
    ) -> dict[str, Any]:
        attempt.rule = "client_authentication"
        attempt.client = await self._clients.workload(form)
        if attempt.client not in self._exchange_clients:
            raise OAuthProblem(
                "unauthorized_client", "this client may not exchange tokens"
            )

        attempt.rule = "request"
        _check_token_types(form)
        subject, may_act, subject_claims = self._subject(form, attempt)
        attempt.actor = await self._actor(form, attempt.client)
        _check_may_act(may_act, attempt.actor)
        self._check_audience(form)
        detail = self._detail(form, attempt)

        attempt.rule = "policy"
        decision = await self._decide(attempt, subject, detail)
        attempt.rule = decision.rule
        if not decision.allowed:
            raise OAuthProblem(
                "access_denied", f"{detail.identifier}: {decision.reason}", 403
            )
        if decision.requires:
            return self._challenge(attempt, subject_claims, detail, decision)
        return self._grant(attempt, subject, detail, decision)

    def _challenge(
        self,
        attempt: _Attempt,
        subject: dict[str, Any],
        detail: AuthorizationDetail,
        decision: PolicyDecision,
    ) -> dict[str, Any]:
        if self._step_up is None:
            raise OAuthProblem(
                "access_denied", f"{detail.identifier}: approval required", 403
            )
        return self._step_up.challenge(
            sub=subject["sub"],
            actor=attempt.actor or "",
            details=[detail.wire()],
            rule=attempt.rule,
            subject=subject,
            requires=decision.requires,
        )

    def _subject(
        self, form: Mapping[str, str], attempt: _Attempt
    ) -> tuple[str, object, dict[str, Any]]:
        """The subject's ``sub``, ``may_act`` (None when absent) and all its claims."""
        claims = self._access_tokens.active_claims(_required(form, "subject_token"))
        if claims is None:
            raise invalid_request("subject_token is invalid")
        attempt.subject_jti = claims["jti"]
        attempt.sub = claims["sub"]
        sub: str = claims["sub"]
        return sub, claims.get("may_act"), claims

    async def _actor(self, form: Mapping[str, str], client: str) -> str:
        try:
            claims = await self._clients.svid_claims(_required(form, "actor_token"))
        except JwtInvalidError as exc:
            raise invalid_request("actor_token is invalid") from exc
        actor: str = claims["sub"]
        if actor != client:
            raise invalid_request("actor_token does not name the authenticated client")
        jti, exp = claims.get("jti"), claims.get("exp")
        if not isinstance(jti, str) or not jti or not isinstance(exp, int | float):
            raise invalid_request("actor_token must carry a jti")
        if not self._actor_jtis.first_use(jti, exp):
            raise OAuthProblem("invalid_grant", "actor_token was already used")
        return actor

    def _check_audience(self, form: Mapping[str, str]) -> None:
        if "resource" in form:
            raise OAuthProblem("invalid_target", "resource is not supported")
        if form.get("audience") != self._vault_audience:
            raise OAuthProblem("invalid_target", "tokens are issued only for Vault")

    def _detail(
        self, form: Mapping[str, str], attempt: _Attempt
    ) -> AuthorizationDetail:
        attempt.rule = "authorization_details"
        raw = _required(form, "authorization_details")
        _check_details_shape(raw)
        try:
            details = parse_details(raw)
        except ValidationError as exc:
            raise _invalid_details("authorization_details is malformed") from exc
        attempt.requested = [d.wire() for d in details]
        return details[0]

    async def _decide(
        self, attempt: _Attempt, sub: str, detail: AuthorizationDetail
    ) -> PolicyDecision:
        try:
            return await self._policy.decide(sub, detail)
        except PolicyUnavailableError as exc:
            attempt.rule = "policy_unavailable"
            raise OAuthProblem(
                "temporarily_unavailable", "the policy cannot be evaluated now", 503
            ) from exc

    def _grant(
        self,
        attempt: _Attempt,
        sub: str,
        detail: AuthorizationDetail,
        decision: PolicyDecision,
    ) -> dict[str, Any]:
        actor = attempt.actor or ""
        obo = self._issuer.obo_token(
            sub=sub, actor=actor, audience=self._vault_audience, details=[detail]
        )
        granted = obo.claims["authorization_details"]
        # Written before the token leaves: no record, no token (AuditWriteError).
        self._audit.append(
            "token_exchanged",
            jti=obo.jti,
            **attempt.fields(),
            granted=granted,
            aud=obo.claims["aud"],
            act=obo.claims["act"],
            iat=obo.claims["iat"],
            exp=obo.claims["exp"],
        )
        log.info(
            "token_exchanged", jti=obo.jti, sub=sub, actor=actor, rule=decision.rule
        )
        return {
            "access_token": obo.token,
            "issued_token_type": JWT_TOKEN_TYPE,
            "token_type": "N_A",  # RFC 8693 §2.2.1: not an access token for us
            "expires_in": obo.expires_in,
            "authorization_details": granted,  # RFC 9396 §7
        }

    def _denied(self, attempt: _Attempt, problem: OAuthProblem) -> None:
        self._audit.append(
            "exchange_denied",
            **attempt.fields(),
            error=problem.error,
            reason=problem.description,
        )
        log.info(
            "exchange_denied",
            sub=attempt.sub,
            actor=attempt.actor,
            error=problem.error,
            rule=attempt.rule,
        )


def _check_token_types(form: Mapping[str, str]) -> None:
    if form.get("subject_token_type") != ACCESS_TOKEN_TYPE:
        raise invalid_request(f"subject_token_type must be {ACCESS_TOKEN_TYPE}")
    if form.get("actor_token_type") != JWT_TOKEN_TYPE:
        raise invalid_request(f"actor_token_type must be {JWT_TOKEN_TYPE}")
    if form.get("requested_token_type", JWT_TOKEN_TYPE) != JWT_TOKEN_TYPE:
        raise invalid_request(f"requested_token_type must be {JWT_TOKEN_TYPE}")


def _check_may_act(may_act: object, actor: str) -> None:
    """RFC 8693 §4.4: if the subject names who may act for it, it must be the actor."""
    if may_act is None:
        return
    if not isinstance(may_act, dict) or may_act.get("sub") != actor:
        raise invalid_request("the subject_token's may_act does not name the actor")


_REGISTERED_TYPES = frozenset(get_args(RarType))
_DETAIL_FIELDS = frozenset(AuthorizationDetail.model_fields)


def _check_details_shape(raw: str) -> None:
    """RFC 9396 §2/§5: say which rule a refused ``authorization_details`` broke."""
    try:
        value = json.loads(raw)
    except RecursionError as exc:  # audited as exchange_denied, like every refusal
        raise _invalid_details("authorization_details nests too deeply") from exc
    except ValueError as exc:
        raise _invalid_details("authorization_details is not valid JSON") from exc
    if not isinstance(value, list):
        raise _invalid_details("authorization_details must be a JSON array")
    if len(value) != 1:
        raise _invalid_details("exactly one authorization detail is required")
    detail = value[0]
    if not isinstance(detail, dict):
        raise _invalid_details("an authorization detail must be a JSON object")
    if detail.get("type") not in _REGISTERED_TYPES:
        raise _invalid_details("authorization detail type is not registered")
    if not set(detail) <= _DETAIL_FIELDS:
        raise _invalid_details("authorization detail has unknown fields")


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise invalid_request(f"{name} is required")
    return value


def _invalid_details(description: str) -> OAuthProblem:
    return OAuthProblem("invalid_authorization_details", description)
