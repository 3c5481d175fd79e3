"""The verify-rar engine against real PostgreSQL: mint, use, revoke, reap."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import hvac
import psycopg
import pytest
import requests
from psycopg import sql
from vault_support import (
    LEASE_ENGINE,
    Tokens,
    VaultUnderTest,
    grant_exists,
    role_exists,
    wait_for,
)

from trustloop.devstack.vault.lease_engine import GrantSpec, role_name_for
from trustloop.identity.rar import Action, patient_read, patient_write, roster_read
from trustloop.identity.vault import VaultError, VaultLeaseClient
from trustloop.records.changes import sha256_hex

if TYPE_CHECKING:
    from collections.abc import Callable

    from trustloop.identity.rar import AuthorizationDetail
    from trustloop.identity.vault import Lease

pytestmark = pytest.mark.integration


def _connect(vault: VaultUnderTest, lease: Lease) -> psycopg.Connection[Any]:
    conninfo = vault.cluster.tcp_conninfo(lease.username, lease.password, lease.jti)
    return psycopg.connect(conninfo, autocommit=True)


def test_credential_logs_in_over_tcp_and_sees_only_the_granted_patient(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    patient_ids: list[str],
) -> None:
    lease = client.issue(tokens.obo(patient_read(patient_ids[0])))

    with _connect(vault, lease) as conn:
        seen = conn.execute("SELECT id FROM clinical.patients").fetchall()
        who = conn.execute("SELECT session_user").fetchone()
    client.revoke(lease.lease_id)

    assert seen == [(patient_ids[0],)]
    assert who == (lease.username,)
    assert lease.username == role_name_for(lease.jti)
    assert lease.lease_id.startswith("verify-rar/creds/clinical/")
    assert 0 < lease.lease_duration <= 60


def test_roster_grant_is_minted_for_the_clinician(
    vault: VaultUnderTest, client: VaultLeaseClient, tokens: Tokens
) -> None:
    lease = client.issue(tokens.obo(roster_read("clin-achen"), sub="clin-achen"))
    with _connect(vault, lease) as conn:
        count = conn.execute("SELECT count(*) FROM clinical.patients").fetchone()
    client.revoke(lease.lease_id)
    assert count is not None
    assert count[0] > 0


def test_replayed_obo_jti_is_refused_even_after_the_lease_ends(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    first_patient: AuthorizationDetail,
) -> None:
    obo = tokens.obo(first_patient)
    lease = client.issue(obo)
    client.revoke(lease.lease_id)

    with pytest.raises(VaultError) as replay:
        client.issue(obo)
    same_jti = tokens.obo(first_patient, jti=lease.jti)
    with pytest.raises(VaultError) as reminted:
        client.issue(same_jti)

    assert replay.value.status == 403
    assert "jti already used" in replay.value.message
    assert reminted.value.status == 403


def test_obo_naming_another_actor_is_refused(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    first_patient: AuthorizationDetail,
) -> None:
    obo = tokens.obo(first_patient, actor="spiffe://trustloop.local/agent-runtime")
    with pytest.raises(VaultError) as refused:
        client.issue(obo)
    assert refused.value.status == 403
    assert not role_exists(vault.cluster, role_name_for(_jti_of(obo)))


@pytest.mark.parametrize(
    ("label", "obo_args"),
    [
        ("expired", {"ttl": -30}),
        ("wrong audience", {"extra": {"aud": "trustloop-other"}}),
        ("wrong issuer", {"extra": {"iss": "http://127.0.0.1:1"}}),
        ("jti not a uuid", {"jti": "not-a-uuid"}),
        (
            "two details",
            {
                "extra": {
                    "authorization_details": [
                        patient_read("a").wire(),
                        patient_read("b").wire(),
                    ]
                }
            },
        ),
        ("issued before start", {"extra": {"iat": 1_000_000}}),
    ],
)
def test_invalid_obo_is_refused_and_creates_nothing(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    first_patient: AuthorizationDetail,
    label: str,
    obo_args: dict[str, object],
) -> None:
    obo = tokens.obo(first_patient, **obo_args)  # type: ignore[arg-type]
    with pytest.raises(VaultError) as refused:
        client.issue(obo)
    assert refused.value.status == 403, label


def test_creds_without_a_client_token_are_denied(
    vault: VaultUnderTest, tokens: Tokens, first_patient: AuthorizationDetail
) -> None:
    answer = requests.post(
        f"{vault.url}/v1/verify-rar/creds/clinical",
        json={"obo_token": tokens.obo(first_patient)},
        timeout=5,
    )
    assert answer.status_code == 403
    assert answer.json() == {"errors": ["permission denied"]}


def test_unknown_vault_role_is_a_bad_request(
    vault: VaultUnderTest, tokens: Tokens, first_patient: AuthorizationDetail
) -> None:
    client = VaultLeaseClient(vault.url, auth_role="mcp-server", creds_role="admin")
    client.login(tokens.svid())
    with pytest.raises(VaultError) as refused:
        client.issue(tokens.obo(first_patient))
    assert refused.value.status == 400


def test_revoke_drops_the_role_and_terminates_its_open_session(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    first_patient: AuthorizationDetail,
) -> None:
    lease = client.issue(tokens.obo(first_patient))
    conn = _connect(vault, lease)
    conn.execute("SELECT 1")

    client.revoke(lease.lease_id)

    assert not role_exists(vault.cluster, lease.username)
    assert not grant_exists(vault.cluster, lease.username)
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT id FROM clinical.patients")
    conn.close()
    with pytest.raises(psycopg.OperationalError):
        _connect(vault, lease).close()


def test_revoke_is_idempotent(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    first_patient: AuthorizationDetail,
) -> None:
    lease = client.issue(tokens.obo(first_patient))
    client.revoke(lease.lease_id)
    client.revoke(lease.lease_id)
    client.revoke("verify-rar/creds/clinical/never-issued")
    assert not role_exists(vault.cluster, lease.username)


def test_lookup_answers_the_lease_ttl(
    vault: VaultUnderTest, tokens: Tokens, first_patient: AuthorizationDetail
) -> None:
    """hvac itself, as any Vault client would call it."""
    hvac_client = hvac.Client(url=vault.url, token="")
    hvac_client.auth.jwt.jwt_login(role="mcp-server", jwt=tokens.svid())
    answer = hvac_client.adapter.post(
        "/v1/verify-rar/creds/clinical", json={"obo_token": tokens.obo(first_patient)}
    )
    lease_id = answer["lease_id"]

    looked_up = hvac_client.sys.read_lease(lease_id)
    revoked = hvac_client.sys.revoke_lease(lease_id)

    assert looked_up["data"]["id"] == lease_id
    assert 0 < looked_up["data"]["ttl"] <= 60
    assert revoked.status_code == 204
    assert not role_exists(vault.cluster, answer["data"]["username"])


def test_reaper_removes_an_expired_lease_without_any_revoke(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    first_patient: AuthorizationDetail,
) -> None:
    lease = client.issue(tokens.obo(first_patient, ttl=2))
    conn = _connect(vault, lease)
    assert role_exists(vault.cluster, lease.username)

    gone = wait_for(lambda: not role_exists(vault.cluster, lease.username), 8)

    assert gone
    assert not grant_exists(vault.cluster, lease.username)
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()


def test_leftover_roles_are_reaped_when_the_stand_in_starts(
    vault: VaultUnderTest, start_vault: Callable[[], VaultUnderTest]
) -> None:
    """A role without a grant row (a crash mid-way) and one with an expired grant."""
    orphan = role_name_for(str(uuid.uuid4()))
    stale = role_name_for(str(uuid.uuid4()))
    with psycopg.connect(vault.cluster.admin_conninfo(LEASE_ENGINE)) as conn:
        for role in (orphan, stale):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(
            "INSERT INTO access.grants VALUES (%s, %s, 'clin-x', 'patient_record',"
            " 'read', 'p', false, now() - interval '1 minute')",
            [stale, str(uuid.uuid4())],
        )

    vault.parts.reaper.stop()  # the running stand-in would reap them too
    try:
        start_vault()
        assert not role_exists(vault.cluster, orphan)
        assert not role_exists(vault.cluster, stale)
        assert not grant_exists(vault.cluster, stale)
    finally:
        vault.parts.reaper.start()


def test_role_that_created_a_large_object_is_still_dropped(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    first_patient: AuthorizationDetail,
) -> None:
    """PostgreSQL 15: any role may create large objects, which block DROP ROLE."""
    lease = client.issue(tokens.obo(first_patient))
    with _connect(vault, lease) as conn:
        row = conn.execute("SELECT lo_create(0)").fetchone()
    assert row is not None

    client.revoke(lease.lease_id)

    assert not role_exists(vault.cluster, lease.username)


def test_ephemeral_role_cannot_connect_to_other_databases(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    first_patient: AuthorizationDetail,
) -> None:
    """Objects made in another database would survive DROP OWNED, block DROP ROLE."""
    lease = client.issue(tokens.obo(first_patient))
    try:
        for dbname in ("postgres", "template1"):
            conninfo = vault.cluster.tcp_conninfo(lease.username, lease.password)
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(conninfo, dbname=dbname).close()
    finally:
        client.revoke(lease.lease_id)


def test_role_owning_objects_in_another_database_is_left_without_login(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    first_patient: AuthorizationDetail,
) -> None:
    """DROP OWNED reaches only the current database: the revoke reports failure,
    the role can no longer log in, and the reaper drops it once the object is gone."""
    lease = client.issue(tokens.obo(first_patient))
    superuser = vault.cluster.admin_conninfo()
    with psycopg.connect(superuser, dbname="postgres", autocommit=True) as conn:
        row = conn.execute("SELECT lo_create(0)").fetchone()
        assert row is not None
        owner = sql.Identifier(lease.username)
        conn.execute(
            sql.SQL("ALTER LARGE OBJECT {} OWNER TO {}").format(
                sql.Literal(row[0]), owner
            )
        )

        with pytest.raises(VaultError) as failed:
            client.revoke(lease.lease_id)
        can_login = _can_login(vault, lease.username)
        conn.execute("SELECT lo_unlink(%s)", [row[0]])

    assert failed.value.status == 500
    assert can_login is False
    assert not grant_exists(vault.cluster, lease.username)
    assert wait_for(lambda: not role_exists(vault.cluster, lease.username), 10)


def test_password_never_reaches_the_postgres_log(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    first_patient: AuthorizationDetail,
) -> None:
    """pgaudit logs CREATE ROLE: only a SCRAM verifier may appear there."""
    lease = client.issue(tokens.obo(first_patient))
    client.revoke(lease.lease_id)
    logged = wait_for(lambda: lease.username in _server_log(vault), 3)
    assert logged
    assert lease.password not in _server_log(vault)


def test_thirty_mint_and_revoke_cycles_leave_nothing_behind(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    first_patient: AuthorizationDetail,
) -> None:
    """Back to back, as tool calls come; their speed is bench/rhythm.py's."""
    left: list[str] = []
    for _ in range(30):
        lease = client.issue(tokens.obo(first_patient))
        client.revoke(lease.lease_id)
        if role_exists(vault.cluster, lease.username) or grant_exists(
            vault.cluster, lease.username
        ):
            left.append(lease.username)

    assert left == []


def test_reaper_ends_a_session_whose_role_was_dropped_under_it(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    first_patient: AuthorizationDetail,
) -> None:
    """A login that raced a revoke runs as a dropped role; here the role is
    dropped under a live session directly, and the reaper's next round ends it."""
    lease = client.issue(tokens.obo(first_patient))
    conn = _connect(vault, lease)
    with psycopg.connect(vault.cluster.admin_conninfo(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(lease.username)))
    conn.execute("SELECT 1")  # PostgreSQL lets it go on

    def ended() -> bool:
        try:
            conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return True
        return False

    assert wait_for(ended, 8)
    conn.close()
    client.revoke(lease.lease_id)
    assert not grant_exists(vault.cluster, lease.username)


def _can_login(vault: VaultUnderTest, role_name: str) -> bool | None:
    with psycopg.connect(vault.cluster.admin_conninfo(LEASE_ENGINE)) as conn:
        row = conn.execute(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [role_name]
        ).fetchone()
    return None if row is None else bool(row[0])


def _jti_of(token: str) -> str:
    import base64
    import json

    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["jti"])


def _server_log(vault: VaultUnderTest) -> str:
    return "".join(
        p.read_text(errors="replace") for p in vault.cluster.log_dir().glob("*")
    )


@pytest.fixture(scope="module")
def sensitive_patient(vault: VaultUnderTest) -> str:
    with psycopg.connect(vault.cluster.admin_conninfo("trustloop_idp")) as conn:
        row = conn.execute(
            "SELECT id FROM clinical.patients WHERE sensitive ORDER BY id LIMIT 1"
        ).fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize(
    ("extra", "rows"),
    [({"acr": "urn:trustloop:acr:step-up", "amr": ["push"]}, 1), ({}, 0)],
    ids=["stepped-up", "plain"],
)
def test_only_a_stepped_up_obo_reads_a_sensitive_patients_rows(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    sensitive_patient: str,
    extra: dict[str, Any],
    rows: int,
) -> None:
    """RLS reads the grant row's stepped_up, which the engine takes from ``acr``."""
    lease = client.issue(tokens.obo(patient_read(sensitive_patient), extra=extra))
    with _connect(vault, lease) as conn:
        seen = conn.execute("SELECT id FROM clinical.patients").fetchall()
    client.revoke(lease.lease_id)

    assert len(seen) == rows


@pytest.mark.parametrize(
    ("action", "group"),
    [
        ("write_note", "clinical_note_writer"),
        ("update_medication", "clinical_medication_writer"),
    ],
)
def test_write_obo_mints_a_writer_whose_grant_names_the_consented_change(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    patient_ids: list[str],
    action: Action,
    group: str,
) -> None:
    """Membership in the writer group only: no reader, no table privilege."""
    digest = sha256_hex(f"the one change of {action}")
    detail = patient_write(patient_ids[0], action, digest)
    lease = client.issue(tokens.obo(detail, extra={"consent": True}))
    with psycopg.connect(vault.cluster.admin_conninfo(LEASE_ENGINE)) as conn:
        grant = conn.execute(
            "SELECT action, resource_id, change_sha256 FROM access.grants"
            " WHERE role_name = %s",
            [lease.username],
        ).fetchone()
        groups = conn.execute(
            "SELECT g.rolname FROM pg_auth_members m"
            " JOIN pg_roles g ON g.oid = m.roleid"
            " JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s",
            [lease.username],
        ).fetchall()
        table_grants = conn.execute(
            "SELECT count(*) FROM information_schema.role_table_grants"
            " WHERE grantee = %s",
            [lease.username],
        ).fetchone()
    client.revoke(lease.lease_id)

    assert grant == (action, patient_ids[0], digest)
    assert groups == [(group,)]
    assert table_grants == (0,)


@pytest.mark.parametrize("consent", [None, False, "true", 1])
@pytest.mark.parametrize("action", ["write_note", "update_medication"])
def test_a_write_obo_without_the_consent_claim_gets_no_role(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    patient_ids: list[str],
    action: Action,
    consent: object,
) -> None:
    """Defence in depth: a policy file that forgot ``requires: [consent]`` (or an
    IdP bug) still cannot give a model a write nobody approved."""
    detail = patient_write(patient_ids[0], action, sha256_hex("an unapproved note"))
    extra = {} if consent is None else {"consent": consent}
    obo = tokens.obo(detail, extra=extra)

    with pytest.raises(VaultError) as refused:
        client.issue(obo)

    assert refused.value.status == 403
    assert "consent" in str(refused.value)
    assert not role_exists(vault.cluster, role_name_for(_jti_of(obo)))


def test_stand_in_start_reaps_unexpired_roles_it_holds_no_lease_for(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    first_patient: AuthorizationDetail,
    start_vault: Callable[[], VaultUnderTest],
) -> None:
    """A restarted stand-in has lost its lease table: nobody could revoke those
    leases by id any more, so their roles go at start-up, not at their expiry."""
    lease = client.issue(tokens.obo(first_patient, ttl=60))
    vault.parts.reaper.stop()  # the running stand-in would not touch a live lease
    try:
        fresh = start_vault()
        assert not role_exists(vault.cluster, lease.username)
        assert not grant_exists(vault.cluster, lease.username)
        assert len(fresh.parts.leases) == 0
    finally:
        vault.parts.reaper.start()
    client.revoke(lease.lease_id)  # the old stand-in's lease: revoking is harmless


def test_start_up_reap_spares_the_roles_of_live_leases_it_holds(
    vault: VaultUnderTest,
    client: VaultLeaseClient,
    tokens: Tokens,
    first_patient: AuthorizationDetail,
) -> None:
    held = client.issue(tokens.obo(first_patient, ttl=60))
    jti = str(uuid.uuid4())
    stray = GrantSpec(
        role_name=role_name_for(jti),
        jti=jti,
        clinician_sub="clin-achen",
        rar_type="patient_record",
        action="read",
        resource_id=first_patient.resource_id,
        stepped_up=False,
        expires_at=datetime.now(UTC) + timedelta(seconds=60),
        group_roles=("clinical_reader",),
    )
    vault.parts.engine.mint(stray, lambda _: None)

    removed = vault.parts.reaper.reap_at_start()

    assert removed == [stray.role_name]
    assert role_exists(vault.cluster, held.username)
    client.revoke(held.lease_id)
