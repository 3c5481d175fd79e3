"""Append-only JSON-lines audit files where each line carries the previous line's hash.

Every part (IdP, Vault, MCP server, runtime) writes its own file through
:class:`AuditLog`. Removing or changing a line breaks the chain, which
:func:`verify_chain` reports. Callers put only ids, ``jti``s, lease ids and hashes
in events: never a token, password, SVID or chart text.

If a line cannot be written the write raises :class:`AuditWriteError`; callers that
must not act without a record (Vault's rule) fail the request.

The chain alone cannot see lines cut off the end of a file: after each append the
writer also updates ``<file>.anchor`` (line count and last hash,
:mod:`trustloop.audit.anchor`). :func:`verify_chain` reads the anchor first, then
the file: a file shorter than its anchor, or whose line at the anchor's count
hashes differently, is broken, and so is a non-empty file without its anchor.
Lines after the anchor are accepted when they chain (a writer appended between the
two reads). An attacker who can rewrite both the file and its anchor defeats this;
ship the lines (or the anchor) to a SIEM to close that.
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

from trustloop.audit.anchor import Anchor, AnchorError, AnchorWriter, read_anchor
from trustloop.audit.lines import BadLineError, parse_line

GENESIS = "0" * 64


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
        self._anchor = AnchorWriter(path)

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
        """The line is written whatever happens here; a failure still raises."""
        try:
            self._anchor.write(Anchor(self._lines, self._prev))
        except AnchorError as exc:
            raise AuditWriteError(str(exc)) from exc


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
    anchor = read_anchor(path)
    prev, prev_number, count = GENESIS, 0, 0
    with path.open("rb") as fh:
        for count, raw in enumerate(fh, start=1):
            at_anchor = anchor is not None and count == anchor.lines
            if at_anchor and anchor is not None and line_hash(raw) != anchor.last_hash:
                return ChainBreak(path, count, "does not match the anchor")
            if not raw.strip():
                continue
            try:
                record = parse_line(raw)
            except BadLineError as exc:
                return ChainBreak(path, count, exc.reason)
            if record.get("prev_hash") != prev:
                return ChainBreak(path, count, _mismatch(prev_number))
            prev, prev_number = line_hash(raw), count
    if anchor is None and count > 0:
        return ChainBreak(path, count, "its anchor file is missing")
    if anchor is not None and count < anchor.lines:
        return ChainBreak(
            path,
            count + 1,
            f"lines {count + 1}-{anchor.lines} were cut off the end (the anchor "
            f"counts {anchor.lines})",
        )
    return None


def _mismatch(prev_number: int) -> str:
    """Name the suspects: the line before was changed, or lines went missing."""
    if prev_number == 0:
        return "prev_hash is not the genesis hash (lines removed from the start?)"
    return (
        f"prev_hash does not match line {prev_number}: line {prev_number} "
        "was changed, or lines after it were removed"
    )
