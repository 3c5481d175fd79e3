"""The IdP's directory: owner-only, atomic, survives a restart, refuses a bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustloop.devstack.idp.directory import (
    CareTeamEntry,
    Directory,
    DirectoryFileError,
    PatientEntry,
)
from trustloop.devstack.idp.policy import PatientFacts


async def test_provisioned_facts_survive_a_restart_in_an_owner_only_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "idp" / "directory.json"
    directory = Directory(path)
    directory.put_patient("p1", PatientEntry(sensitive=True))
    directory.put_care_team("clin-a", CareTeamEntry(role="nurse", patients=["p1"]))

    reopened = Directory(path)

    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["directory.json"]
    assert await reopened.role("clin-a") == "nurse"
    assert await reopened.patient("clin-a", "p1") == PatientFacts(True, True)
    assert await reopened.patient("clin-b", "p1") == PatientFacts(True, False)
    assert await reopened.patient("clin-a", "p2") is None
    assert await reopened.role("clin-b") is None


@pytest.mark.parametrize(
    ("content", "mode"),
    [('{"patients": {}}', 0o644), ("not json", 0o600), ('{"extra": 1}', 0o600)],
    ids=["group-readable", "not-json", "unknown-field"],
)
def test_a_bad_directory_file_stops_the_idp(
    tmp_path: Path, content: str, mode: int
) -> None:
    path = tmp_path / "directory.json"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(DirectoryFileError, match=str(path)):
        Directory(path)
