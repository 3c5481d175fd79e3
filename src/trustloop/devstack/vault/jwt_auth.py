"""``POST /v1/auth/jwt/login``: Vault's JWT auth method, bound to JWT-SVIDs.

One role is configured per workload: its ``bound_subject`` is the SPIFFE ID that
may use it and ``bound_audiences`` the audience the SVID must carry. The SVID is
validated against the SPIFFE trust bundle (JWT-SVID spec §3: signature, ``exp``,
``aud``, a ``sub`` in our trust domain). Failures answer 400, as Vault's JWT
method does, with no detail beyond the spec-level reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from trustloop.devstack.jwtcheck import (
    Clock,
    JwksCache,
    JwtInvalidError,
    verify_jwt_svid,
)
from trustloop.devstack.vault.endpoint import Exchange
from trustloop.devstack.vault.errors import bad_request
from trustloop.devstack.vault.tokens import TokenStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class JwtRole:
    """A JWT auth role: who may log in with it and which policies they get."""

    name: str
    bound_subject: str
    bound_audience: str
    policies: tuple[str, ...]


class JwtAuth:
    """Validates a JWT-SVID for a role and issues a client token."""

    def __init__(
        self,
        roles: dict[str, JwtRole],
        *,
        bundle: JwksCache,
        trust_domain: str,
        tokens: TokenStore,
        clock: Clock,
    ) -> None:
        if not trust_domain:
            raise ValueError("the JWT auth method needs a trust domain")
        self._roles = roles
        self._bundle = bundle
        self._trust_domain = trust_domain
        self._tokens = tokens
        self._clock = clock

    def login(self, exchange: Exchange) -> None:
        """Answer ``{"auth": {...}}`` with a client token for the SVID's SPIFFE ID."""
        role = self._role(exchange.data.get("role"))
        svid = exchange.data.get("jwt")
        if not isinstance(svid, str) or not svid:
            raise bad_request("missing jwt")
        spiffe_id = self._verify(svid, role)

        issued = self._tokens.mint(spiffe_id, role.policies)
        exchange.record.auth = issued.info  # the response line shows the new token
        exchange.record.client_token = issued.token
        body = _auth_body(issued.token, issued.info.accessor, role, self._tokens.ttl_s)
        exchange.respond(200, {"request_id": exchange.record.id, **body})
        self._tokens.keep(issued)
        log.info("client_token_issued", spiffe_id=spiffe_id, role=role.name)

    def _role(self, name: object) -> JwtRole:
        role = self._roles.get(name) if isinstance(name, str) else None
        if role is None:
            raise bad_request(f"role {name!r} could not be found")
        return role

    def _verify(self, svid: str, role: JwtRole) -> str:
        try:
            spiffe_id = verify_jwt_svid(
                svid,
                self._bundle,
                audience=role.bound_audience,
                trust_domain=self._trust_domain,
                clock=self._clock,
            )
        except JwtInvalidError as exc:
            raise bad_request(f"error validating token: {exc}") from exc
        if spiffe_id != role.bound_subject:
            raise bad_request("sub claim does not match bound subject")
        return spiffe_id


def _auth_body(
    token: str, accessor: str, role: JwtRole, ttl_s: int
) -> dict[str, object]:
    return {
        "auth": {
            "client_token": token,
            "accessor": accessor,
            "policies": list(role.policies),
            "token_policies": list(role.policies),
            "lease_duration": ttl_s,
            "renewable": False,
            "metadata": {"role": role.name, "spiffe_id": role.bound_subject},
        }
    }
