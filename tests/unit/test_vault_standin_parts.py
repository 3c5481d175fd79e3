"""Parts of the Vault stand-in that need no server: audit salting, the HMAC key,
client tokens, the jti ledger, role names."""

from __future__ import annotations

import json
import stat
from typing import TYPE_CHECKING

import pytest
from fakeclock import FakeClock

from trustloop.audit.chain import AuditLog
from trustloop.devstack.jti_ledger import JtiLedger
from trustloop.devstack.vault.audit import AuditDevice, AuditRecord, load_hmac_key
from trustloop.devstack.vault.lease_engine import LeaseEngine, role_name_for
from trustloop.devstack.vault.pgpool import ConnectionPool
from trustloop.devstack.vault.tokens import TokenStore
from trustloop.devstack.vault.verify_rar import IAT_LEEWAY_S
from trustloop.identity.vault import Lease

if TYPE_CHECKING:
    from pathlib import Path


def _record(**data: object) -> AuditRecord:
    return AuditRecord(
        id="req-1",
        operation="update",
        path="verify-rar/creds/clinical",
        data=dict(data),
        remote_address="127.0.0.1",
        client_token="hvs.secret-token",
    )


def test_audit_device_hmacs_every_string_but_the_named_ids(tmp_path: Path) -> None:
    device = AuditDevice(AuditLog(tmp_path / "vault.jsonl", "vault"), b"k" * 32)
    record = _record(obo_token="eyJ.obo.token", surprise="anything else")
    record.jti = "7f1d0c1e-0000-4000-8000-000000000000"

    device.log_response(
        record,
        {
            "lease_id": "verify-rar/creds/clinical/abc",
            "data": {"username": "obo_x", "password": "p4ss", "jti": record.jti},
        },
    )
    line = json.loads((tmp_path / "vault.jsonl").read_text())

    assert line["type"] == "response"
    assert line["jti"] == record.jti
    assert line["request"]["data"] == {
        "obo_token": device.hash("eyJ.obo.token"),
        "surprise": device.hash("anything else"),
    }
    assert line["response"]["data"] == {
        "username": "obo_x",
        "password": device.hash("p4ss"),
        "jti": record.jti,
    }
    assert line["response"]["lease_id"] == "verify-rar/creds/clinical/abc"
    assert line["auth"] == {"client_token": device.hash("hvs.secret-token")}


def test_hmac_differs_per_installation_key(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "vault.jsonl", "vault")
    first, second = AuditDevice(log, b"a" * 32), AuditDevice(log, b"b" * 32)
    assert first.hash("secret") != second.hash("secret")
    assert first.hash("secret").startswith("hmac-sha256:")


def test_hmac_key_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "vault" / "audit-hmac.key"
    key = load_hmac_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 32
    assert load_hmac_key(path) == key


def test_hmac_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit-hmac.key"
    load_hmac_key(path)
    path.chmod(0o644)
    with pytest.raises(PermissionError):
        load_hmac_key(path)


def test_client_token_is_valid_until_its_ttl() -> None:
    clock = FakeClock()
    store = TokenStore(ttl_s=300, clock=clock)
    issued = store.mint("spiffe://trustloop.local/mcp-server", ("p",))
    assert store.lookup(issued.token) is None  # not kept yet

    store.keep(issued)
    found = store.lookup(issued.token)
    clock.now += 300

    assert found is not None
    assert found.spiffe_id == "spiffe://trustloop.local/mcp-server"
    assert issued.token.startswith("hvs.")
    assert issued.token not in repr(issued)
    assert store.lookup(issued.token) is None
    assert store.lookup("hvs.guessed") is None


def test_jti_is_single_use_until_its_token_expires() -> None:
    clock = FakeClock()
    ledger = JtiLedger(clock, grace_s=IAT_LEEWAY_S)  # as Vault's OBO check
    assert ledger.first_use("a", clock.now + 60)
    assert not ledger.first_use("a", clock.now + 60)
    clock.now += 120
    assert ledger.first_use("b", clock.now + 60)
    assert ledger.first_use("a", clock.now + 60)  # forgotten: its exp check refuses it


def test_role_name_is_the_jti_hex() -> None:
    jti = "7f1d0c1e-7b1a-4c55-9d7e-3b0f6b2d9a10"
    assert role_name_for(jti) == "obo_7f1d0c1e7b1a4c559d7e3b0f6b2d9a10"
    with pytest.raises(ValueError, match="badly formed"):
        role_name_for("postgres")


@pytest.mark.parametrize("name", ["postgres", "clinical_reader", "obo_1; DROP"])
def test_lease_engine_never_drops_a_role_it_did_not_make(name: str) -> None:
    engine = LeaseEngine(ConnectionPool("host=/nonexistent dbname=none"))
    with pytest.raises(ValueError, match="not an ephemeral role"):
        engine.revoke(name)


def test_lease_repr_hides_the_password() -> None:
    lease = Lease("verify-rar/creds/clinical/x", "obo_1", "s3cret-pw", "jti-1", 60)
    assert "s3cret-pw" not in repr(lease)
    assert "s3cret-pw" not in str(lease)


def test_secret_fields_are_never_listed_as_clear_in_the_audit() -> None:
    from trustloop.devstack.vault.audit import CLEAR_KEYS, NEVER_CLEAR

    assert {"password", "obo_token", "client_token", "jwt", "accessor"} <= NEVER_CLEAR
    assert not CLEAR_KEYS & NEVER_CLEAR
