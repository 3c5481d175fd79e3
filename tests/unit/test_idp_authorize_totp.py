"""The TOTP second factor (RFC 6238) and the demo users' secrets file."""

from __future__ import annotations

import json
import stat
from typing import TYPE_CHECKING

import pyotp
import pytest
from fakeclock import FakeClock

from trustloop.devstack.demo import CLINICIANS
from trustloop.devstack.idp.totp import TotpVerifier
from trustloop.devstack.idp.users import (
    DemoUsers,
    DemoUsersFileError,
    demo_password,
    demo_totp,
    users_file,
)

if TYPE_CHECKING:
    from pathlib import Path

SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # RFC 6238 Appendix B's key, base32


def test_the_rfc_6238_sha1_vectors_pass_at_their_times() -> None:
    """RFC 6238 Appendix B (SHA-1), last six digits of each 8-digit value."""
    vectors = {59: "287082", 1111111109: "081804", 1234567890: "005924"}
    for when, code in vectors.items():
        verifier = TotpVerifier(clock=FakeClock(when))
        assert verifier.verify("alice", SECRET, code)


def test_each_time_step_is_accepted_once_per_user() -> None:
    verifier = TotpVerifier(clock=FakeClock(1_000_000.0))
    code = pyotp.TOTP(SECRET).at(1_000_000)

    assert verifier.verify("alice", SECRET, code)
    assert not verifier.verify("alice", SECRET, code)
    assert verifier.verify("bob", SECRET, code)  # another user's ledger


def test_malformed_codes_and_missing_secrets_fail() -> None:
    verifier = TotpVerifier(clock=FakeClock(1_000_000.0))
    code = pyotp.TOTP(SECRET).at(1_000_000)

    assert not verifier.verify("alice", None, code)
    assert not verifier.verify("alice", SECRET, code + "0")
    assert not verifier.verify("alice", SECRET, " " + code[1:])
    assert not verifier.verify("alice", SECRET, "")


def test_a_new_users_file_holds_a_password_and_totp_secret_each(
    tmp_path: Path,
) -> None:
    users = DemoUsers.from_state_dir(tmp_path)
    secret = demo_totp(tmp_path, "achen")
    stored = json.loads(users_file(tmp_path).read_text())

    assert set(stored) == {c.username for c in CLINICIANS}
    assert stored["achen"] == {
        "password": demo_password(tmp_path, "achen"),
        "totp_secret": secret,
    }
    assert len(pyotp.TOTP(secret).byte_secret()) >= 16
    assert users.totp_secret("achen") == secret
    assert stat.S_IMODE(users_file(tmp_path).stat().st_mode) == 0o600


def test_an_older_passwords_only_file_gains_secrets_and_keeps_passwords(
    tmp_path: Path,
) -> None:
    path = users_file(tmp_path)
    path.parent.mkdir(parents=True)
    old = {c.username: f"old-{c.username}" for c in CLINICIANS}
    path.write_text(json.dumps(old))
    path.chmod(0o600)
    with pytest.raises(DemoUsersFileError, match="no TOTP secrets"):
        demo_totp(tmp_path, "achen")

    users = DemoUsers.from_state_dir(tmp_path)

    assert demo_password(tmp_path, "achen") == "old-achen"
    assert users.authenticate("achen", "old-achen") is not None
    assert demo_totp(tmp_path, "achen") == users.totp_secret("achen")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_secrets_never_show_in_a_repr(tmp_path: Path) -> None:
    users = DemoUsers.from_state_dir(tmp_path)

    assert demo_totp(tmp_path, "achen") not in repr(users)
    assert demo_password(tmp_path, "achen") not in repr(users)
