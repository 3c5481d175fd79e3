"""Helpers for the Vault stand-in tests: test signing keys served as JWKS, token
factories, database checks. The servers run on loopback via ``loopback.ServerThread``.

The SPIFFE bundle and the IdP's JWKS are served by one small Starlette app at
``/keys`` and ``/oauth2/jwks``, with keys generated here: these tests depend on
no other stand-in.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trustloop.devstack.postgres import ClusterInfo
from trustloop.devstack.vault.app import VaultParts
from trustloop.identity.rar import AuthorizationDetail
from trustloop.identity.vault import VaultLeaseClient
from trustloop.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


TRUST_DOMAIN = "trustloop.local"
MCP_ID = f"spiffe://{TRUST_DOMAIN}/mcp-server"
AUDIENCE = "trustloop-vault"
LEASE_ENGINE = "trustloop_lease_engine"


@dataclass
class Signers:
    """Test signing keys for the SPIFFE trust domain and the IdP."""

    spiffe: ECKey
    idp: ECKey
    rogue: ECKey  # published nowhere

    def jwks_app(self) -> Starlette:
        async def spiffe_keys(request: Request) -> JSONResponse:
            document = KeySet([self.spiffe]).as_dict(private=False)
            for jwk in document["keys"]:
                jwk["use"] = "jwt-svid"
            return JSONResponse(document)

        async def idp_keys(request: Request) -> JSONResponse:
            return JSONResponse(KeySet([self.idp]).as_dict(private=False))

        return Starlette(
            routes=[Route("/keys", spiffe_keys), Route("/oauth2/jwks", idp_keys)]
        )


def new_key(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)


def sign(key: ECKey, claims: dict[str, Any], typ: str = "JWT") -> str:
    header = {"alg": "ES256", "kid": key.kid, "typ": typ}
    return jwt.encode(header, claims, key)


@dataclass
class Tokens:
    """Makes JWT-SVIDs and OBO tokens signed by the test keys."""

    signers: Signers
    issuer: str

    def svid(
        self,
        *,
        sub: str = MCP_ID,
        aud: str = AUDIENCE,
        key: ECKey | None = None,
        ttl: int = 300,
    ) -> str:
        now = int(time.time())
        claims = {"sub": sub, "aud": [aud], "iat": now, "exp": now + ttl}
        return sign(key or self.signers.spiffe, claims)

    def obo(
        self,
        detail: AuthorizationDetail,
        *,
        actor: str = MCP_ID,
        sub: str = "clin-achen",
        ttl: int = 60,
        jti: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": AUDIENCE,
            "act": {"sub": actor},
            "client_id": actor,
            "authorization_details": [detail.wire()],
            "iat": now,
            "exp": now + ttl,
            "jti": jti or str(uuid.uuid4()),
        }
        claims.update(extra or {})
        return sign(self.signers.idp, claims)


@dataclass
class VaultUnderTest:
    """A running stand-in and what tests look at."""

    url: str
    parts: VaultParts
    settings: Settings
    cluster: ClusterInfo

    def client(self) -> VaultLeaseClient:
        return VaultLeaseClient(self.url, auth_role="mcp-server", creds_role="clinical")

    @property
    def audit_path(self) -> Path:
        return self.settings.audit_dir / "vault.jsonl"


def role_exists(cluster: ClusterInfo, role_name: str) -> bool:
    with psycopg.connect(cluster.admin_conninfo(LEASE_ENGINE)) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", [role_name]
        ).fetchone()
    return row is not None


def grant_exists(cluster: ClusterInfo, role_name: str) -> bool:
    with psycopg.connect(cluster.admin_conninfo(LEASE_ENGINE)) as conn:
        row = conn.execute(
            "SELECT 1 FROM access.grants WHERE role_name = %s", [role_name]
        ).fetchone()
    return row is not None


def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
