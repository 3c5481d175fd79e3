"""The IdP stand-in as its own process (uvicorn on loopback), with the real SPIFFE
bundle endpoint and the demo care teams provisioned over its admin socket from the
real PostgreSQL, driven by the production client.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest
from joserfc import jws

from trustloop.devstack.idp.admin import admin_socket
from trustloop.devstack.idp.provision import (
    AdminClient,
    ProvisionError,
    provision_from_database,
)
from trustloop.devstack.idp.users import demo_password
from trustloop.devstack.net import free_port
from trustloop.devstack.spire import SpireServer
from trustloop.identity.oauth import (
    IdpClient,
    IssuedToken,
    MfaChallengeError,
    OAuthError,
)
from trustloop.identity.rar import AuthorizationDetail, patient_read, roster_read
from trustloop.settings import Settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from trustloop.devstack.postgres import ClusterInfo

pytestmark = pytest.mark.integration

ME = "clin-achen"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Patients:
    mine: str
    not_mine: str
    mine_sensitive: str


@dataclass(frozen=True)
class RunningIdp:
    settings: Settings
    log_path: Path

    @property
    def audit_path(self) -> Path:
        return self.settings.audit_dir / "idp.jsonl"


@pytest.fixture(scope="module")
def idp(
    cluster: ClusterInfo, spire: SpireServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningIdp]:
    """``python -m trustloop.devstack.idp`` with its own state dir and log file."""
    state = tmp_path_factory.mktemp("idp-state")
    (state / "postgres").mkdir()
    shutil.copy(cluster.data_dir.parent / "cluster.json", state / "postgres")
    settings = Settings(
        state_dir=state,
        idp_url=f"http://127.0.0.1:{free_port()}",
        spire_bundle_url=spire.bundle_url,
    )
    env = {
        **os.environ,
        "TRUSTLOOP_PROFILE": "local",
        "TRUSTLOOP_STATE_DIR": str(state),
        "TRUSTLOOP_IDP_URL": settings.idp_url,
        "TRUSTLOOP_SPIRE_BUNDLE_URL": settings.spire_bundle_url,
    }
    log_path = state / "idp.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "trustloop.devstack.idp"],
            env=env,
            stdout=log,
            stderr=log,
            cwd=state,
        )
    try:
        _wait_ready(settings, process, log_path)
        provision_from_database(state, cluster.admin_conninfo())
        yield RunningIdp(settings, log_path)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_ready(
    settings: Settings, process: subprocess.Popen[bytes], log_path: Path
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    url = f"{settings.idp_url}/.well-known/openid-configuration"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text()[-2000:]
            raise RuntimeError(f"the IdP exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the IdP did not become ready")


@pytest.fixture(scope="module")
def patients(cluster: ClusterInfo) -> Patients:
    """Three demo patients, as the demo set-up stored them."""
    query = """
        SELECT p.id, p.sensitive, bool_or(m.clinician_sub = %s)
        FROM clinical.patients p
        JOIN clinical.care_team_members m ON m.patient_id = p.id
        GROUP BY p.id, p.sensitive ORDER BY p.id
    """
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        rows = conn.execute(query, (ME,)).fetchall()

    def first(sensitive: bool, on_team: bool) -> str:
        return next(str(r[0]) for r in rows if (r[1], r[2]) == (sensitive, on_team))

    return Patients(
        mine=first(False, True),
        not_mine=first(False, False),
        mine_sensitive=first(True, True),
    )


@pytest.fixture
async def client(idp: RunningIdp) -> AsyncIterator[IdpClient]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield IdpClient(idp.settings.idp_issuer, http)


@pytest.fixture
async def user_token(client: IdpClient, idp: RunningIdp) -> IssuedToken:
    password = demo_password(idp.settings.state_dir, "achen")
    return await client.password_grant("achen", password)


def _svid(spire: SpireServer, idp: RunningIdp, spiffe_id: str | None = None) -> str:
    subject = spiffe_id or idp.settings.mcp_spiffe_id
    return spire.jwt_authority.mint(subject, [idp.settings.idp_issuer])


async def _exchange(
    client: IdpClient,
    spire: SpireServer,
    idp: RunningIdp,
    subject_token: str,
    detail: AuthorizationDetail,
    *,
    actor_token: str | None = None,
    audience: str | None = None,
) -> IssuedToken:
    svid = _svid(spire, idp)
    return await client.exchange(
        subject_token=subject_token,
        actor_token=actor_token or svid,
        client_assertion=svid,
        audience=audience or idp.settings.vault_audience,
        detail=detail,
    )


def _claims(token: str) -> dict[str, Any]:
    return dict(json.loads(jws.extract_compact(token.encode()).payload))


async def test_exchange_grants_a_care_team_patient_with_the_exact_obo_claims(
    client: IdpClient,
    spire: SpireServer,
    idp: RunningIdp,
    user_token: IssuedToken,
    patients: Patients,
) -> None:
    detail = patient_read(patients.mine)
    first = await _exchange(client, spire, idp, user_token.access_token, detail)
    second = await _exchange(client, spire, idp, user_token.access_token, detail)
    claims = _claims(first.access_token)

    assert claims["iss"] == idp.settings.idp_issuer
    assert claims["sub"] == ME
    assert claims["act"] == {"sub": idp.settings.mcp_spiffe_id}
    assert claims["aud"] == idp.settings.vault_audience
    assert claims["authorization_details"] == [detail.wire()]
    assert claims["exp"] - claims["iat"] <= 60
    assert first.jti == claims["jti"]
    assert first.jti != second.jti


async def test_exchange_grants_the_clinicians_own_roster(
    client: IdpClient, spire: SpireServer, idp: RunningIdp, user_token: IssuedToken
) -> None:
    obo = await _exchange(client, spire, idp, user_token.access_token, roster_read(ME))
    assert _claims(obo.access_token)["sub"] == ME


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("not_mine", "not on your care team"),
        ("unknown", "not on your care team"),
    ],
)
async def test_the_policy_refuses_with_access_denied(
    client: IdpClient,
    spire: SpireServer,
    idp: RunningIdp,
    user_token: IssuedToken,
    patients: Patients,
    which: str,
    expected: str,
) -> None:
    patient_id = getattr(patients, which, "no-such-patient")
    with pytest.raises(OAuthError) as refused:
        await _exchange(
            client, spire, idp, user_token.access_token, patient_read(patient_id)
        )

    assert refused.value.error == "access_denied"
    assert refused.value.status == 403
    assert f"Patient/{patient_id}" in refused.value.description
    assert expected in refused.value.description


async def test_a_restricted_patient_on_the_care_team_asks_for_step_up(
    client: IdpClient,
    spire: SpireServer,
    idp: RunningIdp,
    user_token: IssuedToken,
    patients: Patients,
) -> None:
    detail = patient_read(patients.mine_sensitive)
    with pytest.raises(MfaChallengeError) as challenged:
        await _exchange(client, spire, idp, user_token.access_token, detail)

    claims = _claims(challenged.value.challenge)
    assert claims["aud"] == idp.settings.idp_issuer
    assert claims["authorization_details"] == [detail.wire()]


async def test_two_details_or_a_widened_detail_are_refused(
    idp: RunningIdp, spire: SpireServer, user_token: IssuedToken, patients: Patients
) -> None:
    one = {"type": "patient_record", "actions": ["read"]}
    one["identifier"] = f"Patient/{patients.mine}"
    widened = {**one, "actions": ["read", "write"]}
    async with httpx.AsyncClient() as http:
        for details in ([one, one], [widened]):
            svid = _svid(spire, idp)  # an actor_token is accepted once
            response = await http.post(
                f"{idp.settings.idp_url}/oauth2/token",
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                    "subject_token": user_token.access_token,
                    "subject_token_type": (
                        "urn:ietf:params:oauth:token-type:access_token"
                    ),
                    "actor_token": svid,
                    "actor_token_type": "urn:ietf:params:oauth:token-type:jwt",
                    "audience": idp.settings.vault_audience,
                    "authorization_details": json.dumps(details),
                    "client_assertion_type": (
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                    ),
                    "client_assertion": svid,
                },
            )
            assert response.status_code == 400
            assert response.json()["error"] == "invalid_authorization_details"
            assert response.headers["cache-control"] == "no-store"


async def test_an_audience_other_than_vault_is_invalid_target(
    client: IdpClient,
    spire: SpireServer,
    idp: RunningIdp,
    user_token: IssuedToken,
    patients: Patients,
) -> None:
    with pytest.raises(OAuthError) as refused:
        await _exchange(
            client,
            spire,
            idp,
            user_token.access_token,
            patient_read(patients.mine),
            audience="https://elsewhere.example",
        )
    assert refused.value.error == "invalid_target"


async def test_an_actor_token_of_another_trust_domain_is_refused(
    client: IdpClient,
    spire: SpireServer,
    idp: RunningIdp,
    user_token: IssuedToken,
    patients: Patients,
) -> None:
    foreign = _svid(spire, idp, "spiffe://elsewhere.example/mcp-server")
    with pytest.raises(OAuthError) as refused:
        await _exchange(
            client,
            spire,
            idp,
            user_token.access_token,
            patient_read(patients.mine),
            actor_token=foreign,
        )
    assert refused.value.error == "invalid_request"


@pytest.mark.parametrize("subject_token", ["garbage", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"])
async def test_a_garbage_subject_token_is_refused(
    client: IdpClient,
    spire: SpireServer,
    idp: RunningIdp,
    patients: Patients,
    subject_token: str,
) -> None:
    with pytest.raises(OAuthError) as refused:
        await _exchange(client, spire, idp, subject_token, patient_read(patients.mine))
    assert refused.value.error == "invalid_request"
    assert refused.value.description == "subject_token is invalid"


async def test_an_obo_token_is_refused_as_a_subject_token(
    client: IdpClient,
    spire: SpireServer,
    idp: RunningIdp,
    user_token: IssuedToken,
    patients: Patients,
) -> None:
    """Only clinician access tokens (``typ: at+jwt``, aud = MCP) can be exchanged.

    (An expired access token is refused too: see the unit tests, which freeze the
    clock instead of waiting out the 15-minute lifetime.)
    """
    obo = await _exchange(
        client, spire, idp, user_token.access_token, patient_read(patients.mine)
    )
    with pytest.raises(OAuthError) as refused:
        await _exchange(
            client, spire, idp, obo.access_token, patient_read(patients.mine)
        )
    assert refused.value.description == "subject_token is invalid"


async def test_introspection_answers_exactly_inactive_for_garbage(
    idp: RunningIdp, spire: SpireServer
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{idp.settings.idp_url}/oauth2/introspect",
            data={
                "token": "garbage",
                "client_assertion_type": (
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                ),
                "client_assertion": _svid(spire, idp),
            },
        )
    assert response.status_code == 200
    assert response.json() == {"active": False}


async def test_introspection_describes_the_clinicians_token(
    client: IdpClient, spire: SpireServer, idp: RunningIdp, user_token: IssuedToken
) -> None:
    found = await client.introspect(
        user_token.access_token, client_assertion=_svid(spire, idp)
    )
    assert found.active
    assert found.sub == ME
    assert found.jti == user_token.jti
    assert found.aud == [idp.settings.mcp_resource]


async def test_no_token_or_password_reaches_the_audit_file_or_the_log(
    client: IdpClient,
    spire: SpireServer,
    idp: RunningIdp,
    user_token: IssuedToken,
    patients: Patients,
) -> None:
    svid = _svid(spire, idp)
    obo = await client.exchange(
        subject_token=user_token.access_token,
        actor_token=svid,
        client_assertion=svid,
        audience=idp.settings.vault_audience,
        detail=patient_read(patients.mine),
    )
    with pytest.raises(OAuthError):
        await _exchange(
            client, spire, idp, user_token.access_token, patient_read(patients.not_mine)
        )
    password = demo_password(idp.settings.state_dir, "achen")

    audit = idp.audit_path.read_text()
    log = idp.log_path.read_text()
    assert obo.jti is not None
    assert obo.jti in audit
    assert obo.jti in log  # one INFO line per exchange carries the OBO jti
    for secret in (user_token.access_token, obo.access_token, svid, password):
        for part in secret.split("."):
            assert part not in audit
            assert part not in log


def test_provisioning_goes_over_the_owner_only_admin_socket(
    idp: RunningIdp, patients: Patients
) -> None:
    sock = admin_socket(idp.settings.state_dir)
    directory = idp.settings.state_dir / "idp" / "directory.json"

    with AdminClient(sock) as admin:
        team = admin.get_care_team(ME)
        patient = admin.get_patient(patients.mine_sensitive)
        missing = admin.get_patient("no-such-patient")

    assert sock.is_socket()
    assert sock.stat().st_mode & 0o777 == 0o600
    assert directory.stat().st_mode & 0o777 == 0o600
    assert team is not None
    assert team["role"] == "physician"
    assert patients.mine in team["patients"]  # type: ignore[operator]
    assert patient == {"id": patients.mine_sensitive, "sensitive": True}
    assert missing is None


async def test_a_care_team_change_over_the_socket_changes_the_next_decision(
    client: IdpClient,
    spire: SpireServer,
    idp: RunningIdp,
    user_token: IssuedToken,
    patients: Patients,
) -> None:
    detail = patient_read(patients.not_mine)
    with AdminClient(admin_socket(idp.settings.state_dir)) as admin:
        team = admin.get_care_team(ME)
        assert team is not None
        before = list(team["patients"])  # type: ignore[call-overload]
        admin.put_care_team(ME, "physician", [*before, patients.not_mine])
        try:
            granted = await _exchange(
                client, spire, idp, user_token.access_token, detail
            )
        finally:
            admin.put_care_team(ME, "physician", before)
        with pytest.raises(OAuthError) as refused:
            await _exchange(client, spire, idp, user_token.access_token, detail)

    assert granted.jti is not None
    assert refused.value.error == "access_denied"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/v1/care-teams/clin-achen"),
        ("PUT", "/admin/v1/patients/p1"),
    ],
)
def test_nothing_answers_the_admin_api_on_tcp(
    idp: RunningIdp, method: str, path: str
) -> None:
    response = httpx.request(
        method, f"{idp.settings.idp_url}{path}", json={"sensitive": False}
    )
    assert response.status_code in (404, 405)


def test_the_admin_api_refuses_a_malformed_body(idp: RunningIdp) -> None:
    with (
        AdminClient(admin_socket(idp.settings.state_dir)) as admin,
        pytest.raises(ProvisionError, match="refused"),
    ):
        admin.put_care_team(ME, "surgeon", [])


async def test_a_replayed_actor_token_is_invalid_grant(
    client: IdpClient,
    spire: SpireServer,
    idp: RunningIdp,
    user_token: IssuedToken,
    patients: Patients,
) -> None:
    actor = _svid(spire, idp)
    detail = patient_read(patients.mine)
    await _exchange(
        client, spire, idp, user_token.access_token, detail, actor_token=actor
    )
    with pytest.raises(OAuthError) as refused:
        await _exchange(
            client, spire, idp, user_token.access_token, detail, actor_token=actor
        )

    assert refused.value.error == "invalid_grant"
    assert refused.value.description == "actor_token was already used"


async def test_a_client_assertion_may_be_reused(
    client: IdpClient,
    spire: SpireServer,
    idp: RunningIdp,
    user_token: IssuedToken,
    patients: Patients,
) -> None:
    """RFC 7523 §3 makes assertion replay checks optional; we apply them to actors."""
    assertion = _svid(spire, idp)
    for _ in range(2):
        await client.exchange(
            subject_token=user_token.access_token,
            actor_token=_svid(spire, idp),
            client_assertion=assertion,
            audience=idp.settings.vault_audience,
            detail=patient_read(patients.mine),
        )
