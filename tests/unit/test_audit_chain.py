"""The audit files' hash chain: appends link, edits and removals are caught."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from trustloop.audit.chain import (
    GENESIS,
    AuditLog,
    AuditWriteError,
    line_hash,
    verify_chain,
)

if TYPE_CHECKING:
    from pathlib import Path


def _write_three(path: Path) -> None:
    log = AuditLog(path, "test")
    for n in range(3):
        log.append("happened", n=n, jti=f"jti-{n}")


def test_each_line_carries_the_hash_of_the_line_before(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write_three(path)
    lines = path.read_bytes().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["prev_hash"] == GENESIS
    assert records[1]["prev_hash"] == line_hash(lines[0])
    assert records[2]["prev_hash"] == line_hash(lines[1])
    assert verify_chain(path) is None


def test_a_reopened_log_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write_three(path)
    AuditLog(path, "test").append("later")
    assert verify_chain(path) is None
    assert len(path.read_text().splitlines()) == 4


def test_an_edited_line_breaks_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write_three(path)
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace("jti-1", "jti-X")
    path.write_text("\n".join(lines) + "\n")
    broken = verify_chain(path)
    assert broken is not None
    assert broken.line_number == 3


def test_a_removed_line_breaks_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write_three(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    broken = verify_chain(path)
    assert broken is not None
    assert broken.line_number == 2


def test_an_unwritable_file_raises_instead_of_dropping_the_record(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    log = AuditLog(blocker / "a.jsonl", "test")
    with pytest.raises(AuditWriteError):
        log.append("happened")
