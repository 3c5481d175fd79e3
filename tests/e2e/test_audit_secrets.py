"""A full session leaves no token, password or SVID in any audit or log file.

The rhythm runs in process against the running stand-ins, with its production
collaborators (IdP client, Workload API, Vault client, PostgreSQL connector)
wrapped by thin recorders that keep the secrets passing through them: the OBO
tokens, the lease passwords, the JWT-SVIDs and the Vault client token. Then every
file under the state directory (logs, audit files, PostgreSQL's data and logs),
the rhythm's own audit file and everything the test process printed are searched
for each secret, whole and (for a JWT) by its signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import httpx
import psycopg
import pytest

from trustloop.audit.chain import AuditLog
from trustloop.identity.oauth import IdpClient
from trustloop.identity.rar import patient_read, roster_read
from trustloop.identity.rhythm import Rhythm
from trustloop.identity.spiffe import WorkloadIdentity
from trustloop.identity.types import PgConnector
from trustloop.identity.vault import VaultLeaseClient
from trustloop.records.queries import list_roster, read_chart

if TYPE_CHECKING:
    from trustloop.devstack.postgres import ClusterInfo
    from trustloop.devstack.stack import Stack
    from trustloop.identity.oauth import Introspection, IssuedToken
    from trustloop.identity.rar import AuthorizationDetail
    from trustloop.identity.spiffe import JwtSvidToken
    from trustloop.identity.types import Connection
    from trustloop.identity.vault import Lease

pytestmark = pytest.mark.e2e


@dataclass
class Secrets:
    obo_tokens: list[str] = field(default_factory=list)
    passwords: list[str] = field(default_factory=list)
    svids: list[str] = field(default_factory=list)
    vault_tokens: list[str] = field(default_factory=list)


class RecordingIdp:
    def __init__(self, inner: IdpClient, secrets: Secrets) -> None:
        self._inner = inner
        self._secrets = secrets

    async def introspect(self, token: str, *, client_assertion: str) -> Introspection:
        return await self._inner.introspect(token, client_assertion=client_assertion)

    async def exchange(
        self,
        *,
        subject_token: str,
        actor_token: str,
        client_assertion: str,
        audience: str,
        detail: AuthorizationDetail,
    ) -> IssuedToken:
        issued = await self._inner.exchange(
            subject_token=subject_token,
            actor_token=actor_token,
            client_assertion=client_assertion,
            audience=audience,
            detail=detail,
        )
        self._secrets.obo_tokens.append(issued.access_token)
        return issued


class RecordingSvids:
    def __init__(self, inner: WorkloadIdentity, secrets: Secrets) -> None:
        self._inner = inner
        self._secrets = secrets

    async def afetch_jwt_svid(self, audience: str) -> JwtSvidToken:
        svid = await self._inner.afetch_jwt_svid(audience)
        self._secrets.svids.append(svid.token)
        return svid

    async def afetch_fresh_jwt_svid(self, audience: str) -> JwtSvidToken:
        svid = await self._inner.afetch_fresh_jwt_svid(audience)
        self._secrets.svids.append(svid.token)
        return svid


class RecordingVault:
    def __init__(self, inner: VaultLeaseClient, secrets: Secrets) -> None:
        self._inner = inner
        self._secrets = secrets

    def needs_login(self) -> bool:
        return self._inner.needs_login()

    def login(self, svid: str) -> object:
        self._inner.login(svid)
        # The client token Vault answered; hvac keeps it on the client.
        self._secrets.vault_tokens.append(str(self._inner._client.token))
        return None

    def issue(self, obo_token: str) -> Lease:
        lease = self._inner.issue(obo_token)
        self._secrets.passwords.append(lease.password)
        return lease

    def revoke(self, lease_id: str) -> object:
        self._inner.revoke(lease_id)
        return None


@dataclass(frozen=True)
class RecordingConnector:
    inner: PgConnector
    secrets: Secrets

    def __call__(
        self, *, username: str, password: str, application_name: str
    ) -> Connection:
        self.secrets.passwords.append(password)
        return self.inner(
            username=username, password=password, application_name=application_name
        )


def _on_team_patient(cluster: ClusterInfo) -> str:
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        row = conn.execute(
            "select m.patient_id from clinical.care_team_members m "
            "join clinical.patients p on p.id = m.patient_id "
            "where m.clinician_sub = 'clin-achen' and not p.sensitive "
            "order by m.patient_id limit 1"
        ).fetchone()
    assert row is not None
    return str(row[0])


async def _run_session(
    stack: Stack, cluster: ClusterInfo, token: str, audit: Path
) -> tuple[Secrets, list[Any]]:
    settings = stack.settings
    secrets = Secrets()
    socket = (settings.spiffe_socket_dir / "mcp-server.sock").resolve()
    svids = WorkloadIdentity(f"unix://{socket}")
    vault = VaultLeaseClient(
        settings.vault_addr,
        auth_role=settings.vault_auth_role,
        creds_role=settings.vault_creds_role,
    )
    patient = _on_team_patient(cluster)
    try:
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
            rhythm = Rhythm(
                idp=RecordingIdp(IdpClient(settings.idp_issuer, http), secrets),
                svids=RecordingSvids(svids, secrets),
                vault=RecordingVault(vault, secrets),
                connect=RecordingConnector(
                    PgConnector(settings.pg_host, cluster.port, settings.pg_dbname),
                    secrets,
                ),
                audit=AuditLog(audit, "mcp"),
                issuer=settings.idp_issuer,
                vault_audience=settings.vault_audience,
                resource=settings.mcp_resource,
            )
            async with rhythm.call(token, roster_read, tool="list_my_patients") as c:
                roster = await c.run(list_roster)
            detail = patient_read(patient)
            async with rhythm.call(token, detail, tool="read_patient_record") as c:
                chart = await c.run(lambda conn: read_chart(conn, patient))
    finally:
        vault.close()
        await anyio.to_thread.run_sync(svids.close)
    return secrets, [roster, chart]


def _needles(secret: str, *, jwt: bool) -> list[str]:
    """The secret, and for a JWT its signature alone (a partial copy still leaks).

    Only a JWT is split: a lease password may hold two dots by chance (about one
    in 25), and its last few characters are no signature (they were found in the
    WAL's bytes, making the test flaky).
    """
    parts = secret.split(".")
    return [secret, parts[2]] if jwt and len(parts) == 3 else [secret]


async def test_no_secret_of_a_full_session_reaches_any_file_or_output(
    stack: Stack,
    cluster_of: ClusterInfo,
    achen_token: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    audit = tmp_path / "mcp-inprocess.jsonl"
    secrets, results = await _run_session(stack, cluster_of, achen_token, audit)

    assert results[0]  # both calls really read data
    assert results[1] is not None
    assert len(secrets.obo_tokens) == 2
    assert len(set(secrets.passwords)) == 2
    assert secrets.svids
    assert secrets.vault_tokens
    printed = "".join(capfd.readouterr())
    files = [p for p in stack.settings.state_dir.rglob("*") if p.is_file()]
    files.append(audit)
    assert any(p.suffix == ".json" and "log" in p.parts for p in files)

    named = {
        "clinician token": [achen_token],
        "OBO token": secrets.obo_tokens,
        "lease password": secrets.passwords,
        "JWT-SVID": secrets.svids,
        "Vault client token": secrets.vault_tokens,
    }
    needles = [
        (what, needle) for what, values in named.items() for v in values
        for needle in _needles(v, jwt=what != "lease password")
    ]  # fmt: skip
    for what, needle in needles:
        assert needle not in printed, f"a {what} was printed"
    for path in files:
        content = path.read_bytes()
        for what, needle in needles:
            assert needle.encode() not in content, f"a {what} is in {path}"
