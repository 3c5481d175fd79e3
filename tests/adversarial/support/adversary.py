"""Helpers for the adversarial tests: probes of the stack and leak checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
from joserfc import jwt
from joserfc.jwk import ECKey

if TYPE_CHECKING:
    from collections.abc import Callable

    from trustloop.devstack.stack import Stack

ACHEN = "clin-achen"
BOKAFOR = "clin-bokafor"
EXCHANGE_EVENTS = frozenset({"token_exchanged", "exchange_denied"})


@dataclass(frozen=True)
class Probe:
    """Read-only views of the stack's database and audit files (as admin)."""

    stack: Stack

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        cluster = self.stack.cluster
        if cluster is None:
            raise RuntimeError("the stack is not running")
        with psycopg.connect(cluster.admin_conninfo()) as conn:
            return list(conn.execute(sql, params).fetchall())

    def obo_roles(self) -> list[str]:
        rows = self.query("select rolname from pg_roles where rolname like 'obo\\_%%'")
        return [str(r[0]) for r in rows]

    def grant_rows(self) -> int:
        return int(self.query("select count(*) from access.grants")[0][0])

    def audit(self, part: str) -> list[dict[str, Any]]:
        path = self.stack.settings.audit_dir / f"{part}.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line.strip()]

    def exchanges(self) -> list[dict[str, Any]]:
        """The IdP's exchange decisions so far, granted or denied."""
        return [e for e in self.audit("idp") if e.get("event") in EXCHANGE_EVENTS]

    def assert_untouched(self, grants_before: int) -> None:
        """No ephemeral role is left and no grant row was added."""
        assert self.obo_roles() == []
        assert self.grant_rows() == grants_before

    def patients(self, *, on_team_of: str, on_team: bool) -> list[str]:
        """Non-sensitive patients on (or off) a clinician's care team, by id."""
        rows = self.query(
            "select p.id from clinical.patients p where not p.sensitive and "
            "exists (select 1 from clinical.care_team_members m "
            "where m.patient_id = p.id and m.clinician_sub = %s) = %s order by p.id",
            on_team_of,
            on_team,
        )
        return [str(r[0]) for r in rows]


def leaks(text: str, *secrets: str) -> list[str]:
    """Which secrets (or their signatures) appear in ``text``."""
    found = []
    for secret in secrets:
        if not secret:
            continue
        signature = secret.rsplit(".", 1)[-1]
        if secret in text or (len(signature) > 16 and signature in text):
            found.append(secret[:12] + "...")
    return found


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(
    header: dict[str, Any], claims: dict[str, Any], key: bytes | None = None
) -> str:
    """A hand-made JWS: unsigned when ``key`` is None, else HMAC-SHA256 with ``key``."""
    signing_input = ".".join(
        b64url(json.dumps(part).encode()) for part in (header, claims)
    )
    if key is None:
        return signing_input + "."
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a compact JWS, unverified (the attacker reads it too)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return decoded


def with_payload(token: str, claims: dict[str, Any]) -> str:
    """``token`` with its payload replaced and the original signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


def invoke(
    stack: Stack, token: str, payload: object, session: str = "adv-session"
) -> list[dict[str, Any]]:
    """POST /invocations; the SSE frames, parsed."""
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": session,
    }
    response = httpx.post(
        f"{stack.settings.runtime_url}/invocations",
        content=json.dumps(payload),
        headers={**headers, "Content-Type": "application/json"},
        timeout=60.0,
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    return [
        json.loads(line[len("data: ") :])
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]


def idp_public_jwk(stack: Stack) -> dict[str, Any]:
    jwks = httpx.get(f"{stack.settings.idp_issuer}/oauth2/jwks", trust_env=False)
    first: dict[str, Any] = jwks.json()["keys"][0]
    return first


def forge(kind: str, genuine: str, jwk: dict[str, Any]) -> str:
    """A forgery of the ``genuine`` token's claims, by ``kind``."""
    claims = claims_of(genuine)
    header = {"alg": "HS256", "kid": jwk["kid"], "typ": "at+jwt"}
    public_pem = ECKey.import_key(jwk).as_pem(private=False)
    kinds: dict[str, Callable[[], str]] = {
        "alg-none": lambda: compact({**header, "alg": "none"}, claims),
        "hs256-with-public-jwk": lambda: compact(
            header, claims, json.dumps(jwk).encode()
        ),
        "hs256-with-public-pem": lambda: compact(header, claims, public_pem),
        "unknown-kid": lambda: jwt.encode(
            {**header, "alg": "ES256", "kid": "attacker"},
            claims,
            ECKey.generate_key("P-256"),
            algorithms=["ES256"],
        ),
        "payload-swapped": lambda: with_payload(genuine, {**claims, "sub": BOKAFOR}),
    }
    return kinds[kind]()
