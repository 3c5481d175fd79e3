"""Append-only JSON-lines audit files where each line carries the previous line's hash.

Every part (IdP, Vault, MCP server, runtime) writes its own file through
:class:`AuditLog`. Removing or changing a line breaks the chain, which
:func:`verify_chain` reports. Callers put only ids, ``jti``s, lease ids and hashes
in events: never a token, password, SVID or chart text.

If a line cannot be written the write raises :class:`AuditWriteError`; callers that
must not act without a record (Vault's rule) fail the request.

The chain alone cannot see lines cut off the end of a file: after each append the
writer also replaces ``<file>.anchor`` (line count and last hash, written to a
temporary file and renamed, so it is never half-written). :func:`verify_chain`
reads the anchor first, then the file: a file shorter than its anchor, or whose
line at the anchor's count hashes differently, is broken. Lines after the anchor
are accepted when they chain (a writer appended between the two reads). An
attacker who can rewrite both the file and its anchor defeats this; ship the
anchor (or each line) to a SIEM to close that.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
ANCHOR_SUFFIX = ".anchor"


class AuditWriteError(OSError):
    """The audit record could not be written."""


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


class AuditLog:
    """One hash-chained JSON-lines file; safe to share between threads of a process."""

    def __init__(self, path: Path, system: str) -> None:
        self.path = path
        self.system = system
        self._lock = threading.Lock()
        self._lines, self._prev = self._end_of_file()

    def _end_of_file(self) -> tuple[int, str]:
        """The number of lines so far and the hash of the last non-empty one."""
        if not self.path.exists():
            return 0, GENESIS
        count, last = 0, b""
        with self.path.open("rb") as fh:
            for count, raw in enumerate(fh, start=1):  # noqa: B007
                if raw.strip():
                    last = raw
        return count, line_hash(last) if last else GENESIS

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Write one event; returns the record as written."""
        with self._lock:
            record = {
                "time": datetime.now(UTC).isoformat(timespec="microseconds"),
                "system": self.system,
                "event": event,
                **fields,
                "prev_hash": self._prev,
            }
            line = json.dumps(record, separators=(",", ":"), default=str).encode()
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line + b"\n")
                finally:
                    os.close(fd)
            except OSError as exc:
                raise AuditWriteError(
                    f"cannot write audit record to {self.path}"
                ) from exc
            self._prev = line_hash(line)
            self._lines += 1
            self._write_anchor()
            return record

    def _write_anchor(self) -> None:
        """Replace the anchor atomically; the line is written whatever happens here."""
        anchor = anchor_path(self.path)
        temporary = anchor.with_name(anchor.name + ".tmp")
        body = json.dumps({"lines": self._lines, "last_hash": self._prev})
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, body.encode())
            finally:
                os.close(fd)
            os.replace(temporary, anchor)
        except OSError as exc:
            raise AuditWriteError(f"cannot write the audit anchor {anchor}") from exc


def anchor_path(path: Path) -> Path:
    return path.with_name(path.name + ANCHOR_SUFFIX)


@dataclass(frozen=True)
class ChainBreak:
    path: Path
    line_number: int
    reason: str


def verify_chain(path: Path) -> ChainBreak | None:
    """Check every line's ``prev_hash`` and the anchor; return the first break.

    A changed line shows as a break on the line after it (whose ``prev_hash`` no
    longer matches); the reason names both. The last lines are covered by the
    anchor (read before the file, see the module docstring).
    """
    anchor = _read_anchor(path)
    prev, prev_number, count = GENESIS, 0, 0
    with path.open("rb") as fh:
        for count, raw in enumerate(fh, start=1):
            at_anchor = anchor is not None and count == anchor.lines
            if at_anchor and anchor is not None and line_hash(raw) != anchor.last_hash:
                return ChainBreak(path, count, "does not match the anchor")
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                return ChainBreak(path, count, "not JSON")
            if record.get("prev_hash") != prev:
                return ChainBreak(path, count, _mismatch(prev_number))
            prev, prev_number = line_hash(raw), count
    if anchor is not None and count < anchor.lines:
        return ChainBreak(
            path,
            count + 1,
            f"lines {count + 1}-{anchor.lines} were cut off the end (the anchor "
            f"counts {anchor.lines})",
        )
    return None


@dataclass(frozen=True)
class _Anchor:
    lines: int
    last_hash: str


def _read_anchor(path: Path) -> _Anchor | None:
    """The anchor beside ``path``; None for files written before anchors existed.

    An anchor that is unreadable is not ignored: it reads as "more lines than any
    file", so verification reports the file as cut off rather than passing it.
    """
    anchor = anchor_path(path)
    try:
        raw = anchor.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        lines, last_hash = data["lines"], data["last_hash"]
    except (ValueError, KeyError, TypeError):
        return _Anchor(lines=2**62, last_hash="")
    if not isinstance(lines, int) or not isinstance(last_hash, str) or lines < 0:
        return _Anchor(lines=2**62, last_hash="")
    return _Anchor(lines=lines, last_hash=last_hash)


def _mismatch(prev_number: int) -> str:
    """Name the suspects: the line before was changed, or lines went missing."""
    if prev_number == 0:
        return "prev_hash is not the genesis hash (lines removed from the start?)"
    return (
        f"prev_hash does not match line {prev_number}: line {prev_number} "
        "was changed, or lines after it were removed"
    )
