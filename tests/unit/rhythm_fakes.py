"""Small in-process stand-ins for the rhythm's collaborators, counting every call."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from trustloop.audit.chain import AuditLog
from trustloop.identity.oauth import Introspection, IssuedToken
from trustloop.identity.rar import AuthorizationDetail
from trustloop.identity.rhythm import Rhythm
from trustloop.identity.spiffe import JwtSvidToken
from trustloop.identity.step_up import ClientAssertion, Progress
from trustloop.identity.types import Connection
from trustloop.identity.vault import Lease

ISSUER = "http://127.0.0.1:9400"
VAULT_AUDIENCE = "trustloop-vault"
RESOURCE = "http://127.0.0.1:8000/mcp"
ACTOR = "spiffe://trustloop.local/mcp-server"
USER_TOKEN = "user-token-SECRET-7f3a"
OBO_TOKEN = "obo-token-SECRET-91cc"
LEASE_PASSWORD = "lease-password-SECRET-42"
OBO_JTI = "0b0f1d2e-3a4b-4c5d-8e6f-708192a3b4c5"
LEASE_ID = "verify-rar/creds/clinical/abc123"
SECRETS = (USER_TOKEN, OBO_TOKEN, LEASE_PASSWORD, "svid-for-")


class FakeSvids:
    def __init__(self) -> None:
        self.audiences: list[str] = []
        self.fresh: list[str] = []

    async def afetch_jwt_svid(self, audience: str) -> JwtSvidToken:
        self.audiences.append(audience)
        return JwtSvidToken(ACTOR, int(time.time()) + 300, f"svid-for-{audience}")

    async def afetch_fresh_jwt_svid(self, audience: str) -> JwtSvidToken:
        self.fresh.append(audience)
        return JwtSvidToken(ACTOR, int(time.time()) + 300, f"svid-for-{audience}")


@dataclass
class FakeIdp:
    introspection: Introspection = field(
        default_factory=lambda: Introspection(
            active=True,
            sub="dr-ada",
            aud=[RESOURCE],
            scope="openid",
            exp=int(time.time()) + 900,
            jti="user-jti",
            client_id="trustloop-cli",
        )
    )
    exchange_error: Exception | None = None
    introspect_error: Exception | None = None
    introspected: list[tuple[str, str]] = field(default_factory=list)
    exchanges: list[dict[str, Any]] = field(default_factory=list)

    async def introspect(self, token: str, *, client_assertion: str) -> Introspection:
        self.introspected.append((token, client_assertion))
        if self.introspect_error is not None:
            raise self.introspect_error
        return self.introspection

    async def exchange(
        self,
        *,
        subject_token: str,
        actor_token: str,
        client_assertion: str,
        audience: str,
        detail: AuthorizationDetail,
    ) -> IssuedToken:
        self.exchanges.append(
            {
                "subject_token": subject_token,
                "actor_token": actor_token,
                "client_assertion": client_assertion,
                "audience": audience,
                "detail": detail,
            }
        )
        if self.exchange_error is not None:
            raise self.exchange_error
        return IssuedToken(OBO_TOKEN, 60, OBO_JTI, int(time.time()) + 60, "N_A")

    @property
    def calls(self) -> int:
        return len(self.introspected) + len(self.exchanges)


@dataclass
class FakeVault:
    issue_delay_s: float = 0.0
    revoke_error: Exception | None = None
    logins: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)

    def needs_login(self) -> bool:
        return not self.logins

    def login(self, svid: str) -> None:
        self.logins.append(svid)

    def issue(self, obo_token: str) -> Lease:
        time.sleep(self.issue_delay_s)
        self.issued.append(obo_token)
        username = "obo_" + OBO_JTI.replace("-", "")
        return Lease(LEASE_ID, username, LEASE_PASSWORD, OBO_JTI, 60)

    def revoke(self, lease_id: str) -> None:
        if self.revoke_error is not None:
            raise self.revoke_error
        self.revoked.append(lease_id)


class FakeConnection:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


@dataclass
class FakeConnector:
    error: Exception | None = None
    connections: list[FakeConnection] = field(default_factory=list)
    logins: list[dict[str, str]] = field(default_factory=list)

    def __call__(
        self, *, username: str, password: str, application_name: str
    ) -> Connection:
        self.logins.append(
            {
                "user": username,
                "password": password,
                "application_name": application_name,
            }
        )
        if self.error is not None:
            raise self.error
        conn = FakeConnection()
        self.connections.append(conn)
        return cast("Connection", conn)


@dataclass
class Stack:
    """A rhythm wired to fakes, with the fakes at hand for assertions."""

    rhythm: Rhythm
    idp: FakeIdp
    svids: FakeSvids
    vault: FakeVault
    connector: FakeConnector
    audit_path: Path

    def audit_text(self) -> str:
        return self.audit_path.read_text() if self.audit_path.exists() else ""


def make_stack(tmp_path: Path, **overrides: Any) -> Stack:
    idp = overrides.pop("idp", FakeIdp())
    vault = overrides.pop("vault", FakeVault())
    connector = overrides.pop("connector", FakeConnector())
    svids = FakeSvids()
    audit_path = tmp_path / "audit" / "mcp.jsonl"
    rhythm = Rhythm(
        idp=idp,
        svids=svids,
        vault=vault,
        connect=connector,
        audit=AuditLog(audit_path, "mcp"),
        issuer=ISSUER,
        vault_audience=VAULT_AUDIENCE,
        resource=RESOURCE,
        **overrides,
    )
    return Stack(rhythm, idp, svids, vault, connector, audit_path)


@dataclass
class FakeStepUp:
    """Answers every step-up with ``error``, or with the OBO after one progress."""

    error: Exception | None = None
    challenges: list[str] = field(default_factory=list)
    change_texts: list[str | None] = field(default_factory=list)

    async def approve(
        self,
        challenge: str,
        detail: AuthorizationDetail,
        *,
        client_assertion: ClientAssertion,
        progress: Progress | None = None,
        change_text: str | None = None,
    ) -> IssuedToken:
        self.challenges.append(challenge)
        self.change_texts.append(change_text)
        if progress is not None:
            await progress(0.0, 60.0, "approve on your device")
        if self.error is not None:
            raise self.error
        await client_assertion()
        return IssuedToken(OBO_TOKEN, 60, OBO_JTI, int(time.time()) + 60, "N_A")
