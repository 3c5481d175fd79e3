"""Demo clinicians' generated passwords: created once, 0600, hashed in memory."""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

import pytest

from trustloop.devstack.demo import CLINICIANS
from trustloop.devstack.idp.users import (
    DemoUsers,
    DemoUsersFileError,
    demo_password,
    users_file,
)

if TYPE_CHECKING:
    from pathlib import Path


def test_passwords_are_generated_once_into_a_0600_file(tmp_path: Path) -> None:
    DemoUsers.from_state_dir(tmp_path)  # the IdP's first start creates the file
    first = demo_password(tmp_path, "achen")
    again = demo_password(tmp_path, "achen")

    mode = stat.S_IMODE(users_file(tmp_path).stat().st_mode)
    assert first == again
    assert mode == 0o600
    assert len(first) >= 16


def test_every_demo_clinician_gets_a_distinct_password(tmp_path: Path) -> None:
    DemoUsers.from_state_dir(tmp_path)
    passwords = {demo_password(tmp_path, c.username) for c in CLINICIANS}
    assert len(passwords) == len(CLINICIANS)


def test_the_idp_accepts_the_password_the_cli_reads(tmp_path: Path) -> None:
    users = DemoUsers.from_state_dir(tmp_path)
    clinician = users.authenticate("bokafor", demo_password(tmp_path, "bokafor"))

    assert clinician is not None
    assert clinician.sub == "clin-bokafor"


def test_a_wrong_password_or_unknown_user_is_refused() -> None:
    users = DemoUsers({"achen": "right"})
    assert users.authenticate("achen", "wrong") is None
    assert users.authenticate("nobody", "right") is None


def test_a_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    DemoUsers.from_state_dir(tmp_path)
    users_file(tmp_path).chmod(0o644)

    with pytest.raises(DemoUsersFileError):
        demo_password(tmp_path, "achen")


def test_an_unknown_username_has_no_demo_password(tmp_path: Path) -> None:
    DemoUsers.from_state_dir(tmp_path)
    with pytest.raises(KeyError):
        demo_password(tmp_path, "mallory")


def test_the_password_hash_never_shows_in_a_repr() -> None:
    users = DemoUsers({"achen": "right"})
    assert "right" not in repr(vars(users))


def test_the_cli_never_creates_a_passwords_file(tmp_path: Path) -> None:
    """Reading from a folder no stack ran in fails clearly and writes nothing."""
    with pytest.raises(DemoUsersFileError, match="no local stack state"):
        demo_password(tmp_path, "achen")
    assert not users_file(tmp_path).exists()
