"""Follow every audit source at once: ``trustloop audit tail [-f]``.

:func:`tail` is a generator: it yields the latest ``count`` events of all sources
merged by time, then (``follow=True``) every event appended afterwards, in one
stream ordered by arrival (events that arrive in the same poll are ordered by
time). It re-lists the sources on every poll, so a file that appears later (an
audit file written for the first time, a PostgreSQL log file after rotation) is
read from its start; a file that shrinks or is replaced is read again from its
start. A line is yielded only once it is complete (ends with a newline).

Sleep and stop are injectable, so tests drive it without a terminal or a clock.
PostgreSQL's own housekeeping (the lease reaper's query every 2 s, checkpoints) is
left out unless ``all_postgres``: a PostgreSQL line is shown when it concerns an
ephemeral role (its user, or a role its statement names) or is a warning or error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from trustloop.audit.lines import record_or_none
from trustloop.audit.records import (
    ROLE_PREFIX,
    AuditEvent,
    from_audit_record,
    from_postgres_record,
    parse_time,
    roles_named,
)

if TYPE_CHECKING:
    from pathlib import Path

POLL_S = 0.5
_SHOWN_SEVERITIES = frozenset({"WARNING", "ERROR", "FATAL", "PANIC"})
_UNKNOWN_TIME = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Sources:
    """Where the records are: the chained audit files and PostgreSQL's log files."""

    audit_dir: Path
    pg_log_dir: Path | None = None
    all_postgres: bool = False

    def files(self) -> list[Path]:
        """The files as they are now, chained audit files first."""
        found = (
            sorted(self.audit_dir.glob("*.jsonl")) if self.audit_dir.is_dir() else []
        )
        if self.pg_log_dir is not None and self.pg_log_dir.is_dir():
            found.extend(sorted(self.pg_log_dir.glob("*.json")))
        return found

    def event(
        self, path: Path, number: int, record: dict[str, Any]
    ) -> AuditEvent | None:
        """The event of one record, or None for PostgreSQL housekeeping."""
        if path.suffix == ".jsonl":
            return from_audit_record(
                record, file=path.name, line=number, system=path.stem
            )
        if not self.all_postgres and not _concerns_a_call(record):
            return None
        return from_postgres_record(record, file=path.name, line=number)


def _concerns_a_call(record: dict[str, Any]) -> bool:
    if str(record.get("user", "")).startswith(ROLE_PREFIX):
        return True
    if record.get("error_severity") in _SHOWN_SEVERITIES:
        return True
    return bool(roles_named(str(record.get("message", ""))))


class _Cursor:
    """How far one file has been read: byte offset, complete lines, partial tail."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.inode: int | None = None
        self.offset = 0
        self.lines = 0
        self.partial = b""

    def read_new(self) -> list[tuple[int, bytes]]:
        """The complete lines appended since the last read, with their numbers."""
        try:
            stat = self.path.stat()
            if stat.st_size < self.offset or stat.st_ino != self.inode:
                # New, truncated or replaced: read it from its start.
                self.offset, self.lines, self.partial = 0, 0, b""
                self.inode = stat.st_ino
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        *complete, self.partial = (self.partial + chunk).split(b"\n")
        numbered = []
        for raw in complete:
            self.lines += 1
            numbered.append((self.lines, raw))
        return numbered


def tail(
    sources: Sources,
    *,
    count: int = 20,
    follow: bool = False,
    poll_s: float = POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    stop: Callable[[], bool] = lambda: False,
) -> Generator[AuditEvent, None, None]:
    """The latest ``count`` events merged by time; then, if ``follow``, new ones.

    Following ends when ``stop()`` is true (checked before each poll) or when the
    caller closes the generator (Ctrl-C in the CLI).
    """
    cursors: dict[Path, _Cursor] = {}
    backlog = _poll(sources, cursors)
    yield from backlog[-count:] if count > 0 else []

    while follow and not stop():
        arrived = _poll(sources, cursors)
        if not arrived:
            sleep(poll_s)
            continue
        yield from arrived


def _poll(sources: Sources, cursors: dict[Path, _Cursor]) -> list[AuditEvent]:
    """Every complete line appended to any source since the last poll, by time."""
    events: list[AuditEvent] = []
    for path in sources.files():
        cursor = cursors.setdefault(path, _Cursor(path))
        for number, raw in cursor.read_new():
            record = record_or_none(raw)
            if record is None:
                continue
            event = sources.event(path, number, record)
            if event is not None:
                events.append(event)
    return sorted(events, key=lambda e: parse_time(e.time) or _UNKNOWN_TIME)
