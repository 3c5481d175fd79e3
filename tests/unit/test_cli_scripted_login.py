"""The scripted demo sign-in never presents a TOTP code another process spent."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyotp

from trustloop.cli.scripted_login import DemoCredentials, _unused_code

if TYPE_CHECKING:
    from pathlib import Path

SECRET = pyotp.random_base32()


def _creds(steps_file: Path, username: str = "achen") -> DemoCredentials:
    return DemoCredentials(
        issuer="http://idp.test",
        username=username,
        password="not-used-here",
        totp_secret=SECRET,
        steps_file=steps_file,
    )


def test_codes_are_shared_between_processes_through_the_steps_file(
    tmp_path: Path,
) -> None:
    """Three steps are valid at a time (now, next, previous); none twice."""
    steps = tmp_path / "cli" / "totp-steps.json"
    # A fresh DemoCredentials each time, as a new `trustloop ask` process builds.
    codes = [_unused_code(_creds(steps)) for _ in range(4)]

    assert None not in codes[:3]
    assert len(set(codes[:3])) == 3
    assert codes[3] is None  # then the scripted device falls back to a push
    assert oct(steps.stat().st_mode & 0o777) == "0o600"


def test_each_clinician_has_its_own_steps(tmp_path: Path) -> None:
    steps = tmp_path / "totp-steps.json"
    for _ in range(3):
        _unused_code(_creds(steps, "achen"))

    assert _unused_code(_creds(steps, "bokafor")) is not None


def test_a_damaged_steps_file_is_started_afresh(tmp_path: Path) -> None:
    steps = tmp_path / "totp-steps.json"
    steps.write_text("{not json")

    assert _unused_code(_creds(steps)) is not None
