"""The audit files' hash chain: appends link, edits and removals are caught."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from trustloop.audit.anchor import SLOT_BYTES, anchor_path, read_anchor
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


def test_lines_cut_off_the_end_are_caught_by_the_anchor(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write_three(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:1]) + "\n")

    broken = verify_chain(path)

    assert broken is not None
    assert broken.line_number == 2
    assert "cut off the end" in broken.reason


def test_a_changed_last_line_is_caught_by_the_anchor(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write_three(path)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("jti-2", "jti-X")
    path.write_text("\n".join(lines) + "\n")

    broken = verify_chain(path)

    assert broken is not None
    assert broken.line_number == 3
    assert broken.reason == "does not match the anchor"


def test_lines_appended_after_the_anchor_was_read_still_verify(tmp_path: Path) -> None:
    """A writer may append between verify's read of the anchor and of the file."""
    path = tmp_path / "a.jsonl"
    _write_three(path)
    anchor = anchor_path(path).read_bytes()
    AuditLog(path, "test").append("later")
    anchor_path(path).write_bytes(anchor)

    assert verify_chain(path) is None


def test_an_unreadable_anchor_fails_verification(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write_three(path)
    anchor_path(path).write_text("{not json")

    broken = verify_chain(path)

    assert broken is not None
    assert "cut off the end" in broken.reason


def test_the_anchor_counts_lines_across_reopened_logs(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write_three(path)
    AuditLog(path, "test").append("later")

    anchor = read_anchor(path)

    assert anchor is not None
    assert anchor.lines == 4
    assert anchor.last_hash == line_hash(path.read_bytes().splitlines()[-1])


def test_a_torn_anchor_slot_falls_back_to_the_other_one(tmp_path: Path) -> None:
    """A crash mid-write spoils one slot; the previous count still anchors."""
    path = tmp_path / "a.jsonl"
    _write_three(path)  # the last write (3 lines) went to slot 1
    raw = bytearray(anchor_path(path).read_bytes())
    raw[SLOT_BYTES + 20] ^= 0x01

    anchor_path(path).write_bytes(bytes(raw))

    anchor = read_anchor(path)
    assert anchor is not None
    assert anchor.lines == 2
    assert verify_chain(path) is None


def test_a_missing_anchor_fails_verification(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write_three(path)
    anchor_path(path).unlink()

    broken = verify_chain(path)

    assert broken is not None
    assert broken.reason == "its anchor file is missing"
