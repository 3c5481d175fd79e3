"""The real IdP app in process, under attack: a frozen clock and keys the test holds.

``build_idp``/``create_app`` (driven over ASGI) on a copy of the running stack's
directory and demo users, trusting one SPIFFE signing key the test holds, so the test
can sign JWT-SVIDs with any claims (another trust domain, another audience, expiry
at the edge of the leeway) and access tokens with the IdP's own key (a wrong issuer,
a wrong audience). :func:`refused` posts a form and checks the refusal: the RFC
error, nothing issued, the denial audited, no token echoed.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from adversary import ACHEN, leaks
from joserfc import jwt
from joserfc.jwk import ECKey

from trustloop.devstack.demo import by_username
from trustloop.devstack.idp.app import Idp, build_idp, create_app
from trustloop.devstack.jwtcheck import JwksCache
from trustloop.devstack.net import free_port
from trustloop.identity.oauth import (
    ACCESS_TOKEN_TYPE,
    JWT_BEARER_ASSERTION,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE_GRANT,
)
from trustloop.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path

    from adversary import Probe
    from starlette.applications import Starlette

    from trustloop.devstack.stack import Stack

LEEWAY = 5


@dataclass
class FrozenClock:
    now: float

    def __call__(self) -> float:
        return self.now


@dataclass
class Lab:
    """The IdP under attack and the keys the attacker (or the test) holds."""

    idp: Idp
    app: Starlette
    clock: FrozenClock
    spiffe_key: ECKey
    settings: Settings
    mine: str  # a non-sensitive patient on Dr. Chen's care team

    @property
    def issuer(self) -> str:
        return self.settings.idp_issuer

    @property
    def mcp_id(self) -> str:
        return self.settings.mcp_spiffe_id

    def svid(self, sub: str | None = None, **claims: Any) -> str:
        """A JWT-SVID signed by the trusted SPIFFE key, claims overridable."""
        now = int(self.clock.now)
        body: dict[str, Any] = {
            "sub": sub or self.mcp_id,
            "aud": [self.issuer],
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        header = {"alg": "ES256", "kid": self.spiffe_key.kid, "typ": "JWT"}
        return jwt.encode(header, body, self.spiffe_key, algorithms=["ES256"])

    def access_claims(self, username: str = "achen") -> dict[str, Any]:
        clinician = by_username(username)
        if clinician is None:
            raise LookupError(username)
        issued = self.idp.issuer.access_token(
            clinician, client_id="trustloop-cli", scope="openid"
        )
        return dict(issued.claims)

    def access(self, typ: str = "at+jwt", **claims: Any) -> str:
        """An access token signed by the IdP's own active key."""
        body = {**self.access_claims(), **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return self.idp.keys.sign(body, typ=typ)

    def detail(self, patient: str | None = None) -> str:
        identifier = f"Patient/{patient or self.mine}"
        entry = {
            "type": "patient_record",
            "actions": ["read"],
            "identifier": identifier,
        }
        return json.dumps([entry])

    def form(self, **overrides: str | None) -> dict[str, str]:
        form: dict[str, str | None] = {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "client_assertion_type": JWT_BEARER_ASSERTION,
            "client_assertion": self.svid(),
            "subject_token": self.access(),
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "actor_token": self.svid(),
            "actor_token_type": JWT_TOKEN_TYPE,
            "audience": self.settings.vault_audience,
            "authorization_details": self.detail(),
            **overrides,
        }
        return {k: v for k, v in form.items() if v is not None}

    def audit_text(self) -> str:
        path = self.settings.audit_dir / "idp.jsonl"
        return path.read_text() if path.exists() else ""

    def events(self, name: str) -> int:
        lines = self.audit_text().splitlines()
        return sum(1 for line in lines if json.loads(line).get("event") == name)

    async def token(self, form: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url=self.issuer) as c:
            return await c.post("/oauth2/token", data=form)


def build_lab(stack: Stack, probe: Probe, state: Path) -> Lab:
    """A lab IdP on ``state``, with the stack's directory and demo users copied."""
    (state / "idp").mkdir(mode=0o700)
    for name in ("demo-users.json", "directory.json"):
        target = state / "idp" / name
        shutil.copy(stack.settings.state_dir / "idp" / name, target)
        target.chmod(0o600)
    settings = Settings(
        state_dir=state,
        idp_url=f"http://127.0.0.1:{free_port()}",
        mcp_url=stack.settings.mcp_url,
    )
    clock = FrozenClock(float(int(time.time())))
    spiffe_key = ECKey.generate_key("P-256", parameters={"kid": "lab-spiffe"})
    public = ECKey.import_key(spiffe_key.as_dict(private=False))
    idp = build_idp(settings, svid_keys=JwksCache(keys=[public]), clock=clock)
    mine = probe.patients(on_team_of=ACHEN, on_team=True)[0]
    return Lab(idp, create_app(idp), clock, spiffe_key, settings, mine)


async def refused(
    lab: Lab, form: dict[str, str], error: str, status: int = 400
) -> dict[str, Any]:
    """Post ``form``; assert the refusal, that nothing was issued and nothing leaked."""
    granted_before = lab.events("token_exchanged")
    denied_before = lab.events("exchange_denied")

    response = await lab.token(form)

    body: dict[str, Any] = response.json()
    assert (response.status_code, body.get("error")) == (status, error), body
    assert "access_token" not in body
    assert response.headers["cache-control"] == "no-store"
    secrets = [v for k, v in form.items() if k.endswith(("_token", "assertion"))]
    assert leaks(response.text, *secrets) == []
    assert leaks(lab.audit_text(), *secrets) == []
    assert lab.events("token_exchanged") == granted_before
    assert lab.events("exchange_denied") == denied_before + 1
    return body
