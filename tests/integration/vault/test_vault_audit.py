"""The file audit device: Vault's shape, secrets only as HMACs, and Vault's rule
that a request which cannot be recorded does nothing."""

from __future__ import annotations

import json
import shutil
import stat
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import hvac
import pytest
from vault_support import Tokens, VaultUnderTest, grant_exists, role_exists

from trustloop.audit.chain import AuditWriteError, verify_chain
from trustloop.devstack.vault.lease_engine import role_name_for
from trustloop.identity.vault import VaultError

if TYPE_CHECKING:
    from collections.abc import Callable

    from trustloop.identity.rar import AuthorizationDetail

pytestmark = pytest.mark.integration


def _records(vault: VaultUnderTest) -> list[dict[str, Any]]:
    lines = vault.audit_path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_audit_has_the_jti_in_clear_and_every_secret_only_as_hmac(
    vault: VaultUnderTest, tokens: Tokens, first_patient: AuthorizationDetail
) -> None:
    svid = tokens.svid()
    obo = tokens.obo(first_patient)
    hvac_client = hvac.Client(url=vault.url, token="")
    login = hvac_client.auth.jwt.jwt_login(role="mcp-server", jwt=svid)
    creds = hvac_client.adapter.post(
        "/v1/verify-rar/creds/clinical", json={"obo_token": obo}
    )
    hvac_client.sys.revoke_lease(creds["lease_id"])

    client_token = login["auth"]["client_token"]
    accessor = login["auth"]["accessor"]
    password = creds["data"]["password"]
    jti = creds["data"]["jti"]
    text = vault.audit_path.read_text()
    mine = [r for r in _records(vault) if r.get("jti") == jti]
    answer = next(r for r in mine if r["request"]["path"].startswith("verify-rar"))
    hmac = vault.parts.audit.hash

    for secret in (svid, obo, client_token, accessor, password):
        assert secret not in text
    # Request lines are written before the OBO is read: they carry the lease id.
    assert [r["type"] for r in mine] == ["response", "response"]
    assert any(
        r["type"] == "request"
        and r["request"]["data"] == {"lease_id": creds["lease_id"]}
        for r in _records(vault)
    )
    assert answer["response"]["data"]["password"] == hmac(password)
    assert answer["response"]["data"]["username"] == role_name_for(jti)
    assert answer["response"]["lease_id"] == creds["lease_id"]
    assert answer["request"]["data"]["obo_token"] == hmac(obo)
    assert answer["auth"]["client_token"] == hmac(client_token)
    assert answer["auth"]["metadata"]["spiffe_id"].endswith("/mcp-server")
    assert verify_chain(vault.audit_path) is None


def test_what_an_anonymous_caller_puts_in_a_body_is_only_an_hmac(
    vault: VaultUnderTest,
) -> None:
    """A body naming another call's jti or role must not read as that call's."""
    victim = str(uuid.uuid4())
    planted = {"jti": victim, "username": role_name_for(victim), "id": victim}

    answer = httpx.post(
        f"{vault.url}/v1/verify-rar/creds/clinical", json=planted, trust_env=False
    )

    assert answer.status_code in (400, 403)
    text = vault.audit_path.read_text()
    assert victim not in text
    assert role_name_for(victim) not in text
    request = [r for r in _records(vault) if r["type"] == "request"][-1]
    assert request["request"]["data"] == {
        key: vault.parts.audit.hash(value) for key, value in planted.items()
    }


def test_hmac_key_is_private_to_the_installation(vault: VaultUnderTest) -> None:
    key_file = vault.settings.state_dir / "vault" / "audit-hmac.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_unwritable_audit_file_fails_the_request_and_creates_no_role(
    start_vault: Callable[[], VaultUnderTest],
    tokens: Tokens,
    first_patient: AuthorizationDetail,
) -> None:
    vault = start_vault()
    client = vault.client()
    client.login(tokens.svid())
    vault.audit_path.unlink()
    vault.audit_path.mkdir()  # as root chmod would not stop a write; EISDIR does
    jti = str(uuid.uuid4())

    try:
        with pytest.raises(VaultError) as failed:
            client.issue(tokens.obo(first_patient, jti=jti))
        with pytest.raises(VaultError) as login_failed:
            vault.client().login(tokens.svid())
    finally:
        shutil.rmtree(vault.audit_path)

    assert failed.value.status == 500
    assert login_failed.value.status == 500
    assert not role_exists(vault.cluster, role_name_for(jti))


def test_response_audit_failure_rolls_back_the_credential(
    start_vault: Callable[[], VaultUnderTest],
    tokens: Tokens,
    first_patient: AuthorizationDetail,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The request line is written, the answer's is not: nothing is handed out."""
    vault = start_vault()
    client = vault.client()
    client.login(tokens.svid())
    jti = str(uuid.uuid4())

    def refuse(*args: object) -> None:
        raise AuditWriteError("disk full")

    monkeypatch.setattr(vault.parts.audit, "log_response", refuse)
    with pytest.raises(VaultError) as failed:
        client.issue(tokens.obo(first_patient, jti=jti))

    assert failed.value.status == 500
    assert not role_exists(vault.cluster, role_name_for(jti))
    assert not grant_exists(vault.cluster, role_name_for(jti))
    assert len(vault.parts.leases) == 0
