"""Append-only JSON-lines audit files where each line carries the previous line's hash.

Every part (IdP, Vault, MCP server, runtime) writes its own file through
:class:`AuditLog`. Removing or changing a line breaks the chain, which
:func:`verify_chain` reports. Callers put only ids, ``jti``s, lease ids and hashes
in events: never a token, password, SVID or chart text.

If a line cannot be written the write raises :class:`AuditWriteError`; callers that
must not act without a record (Vault's rule) fail the request.
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
        self._prev = self._last_hash()

    def _last_hash(self) -> str:
        if not self.path.exists():
            return GENESIS
        last = b""
        with self.path.open("rb") as fh:
            for raw in fh:
                if raw.strip():
                    last = raw
        return line_hash(last) if last else GENESIS

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
            return record


@dataclass(frozen=True)
class ChainBreak:
    path: Path
    line_number: int
    reason: str


def verify_chain(path: Path) -> ChainBreak | None:
    """Check every line's ``prev_hash``; return the first break, or None.

    A changed line shows as a break on the line after it (whose ``prev_hash`` no
    longer matches); the reason names both. The last line of a file has no
    successor: its hash is the anchor to keep elsewhere (a SIEM that ingests it).
    """
    prev, prev_number = GENESIS, 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                return ChainBreak(path, number, "not JSON")
            if record.get("prev_hash") != prev:
                return ChainBreak(path, number, _mismatch(prev_number))
            prev, prev_number = line_hash(raw), number
    return None


def _mismatch(prev_number: int) -> str:
    """Name the suspects: the line before was changed, or lines went missing."""
    if prev_number == 0:
        return "prev_hash is not the genesis hash (lines removed from the start?)"
    return (
        f"prev_hash does not match line {prev_number}: line {prev_number} "
        "was changed, or lines after it were removed"
    )
