"""Join every system's audit records of one tool call on the OBO token's ``jti``.

Sources: the hash-chained JSON-lines files of the IdP, Vault, MCP server and
runtime (``<state>/audit/*.jsonl``) and PostgreSQL's ``jsonlog`` files, where the
ephemeral role (``obo_<jti hex>``) and ``application_name`` (the ``jti``) name the
call. The result is one timeline ordered by time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TraceEvent:
    time: str
    system: str
    event: str
    detail: str


def role_name_for(jti: str) -> str:
    """The ephemeral PostgreSQL role the lease engine creates for ``jti``."""
    return "obo_" + jti.replace("-", "").lower()


class TraceError(ValueError):
    """The argument cannot be a ``jti``."""


_JTI = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")


def trace(jti: str, audit_dir: Path, pg_log_dir: Path | None) -> list[TraceEvent]:
    """Every record naming ``jti`` (a field equal to it), oldest first."""
    if not _JTI.fullmatch(jti):
        raise TraceError(f"{jti!r} is not a jti (8-128 letters, digits, . _ : -)")
    events = list(_audit_events(jti, audit_dir))
    if pg_log_dir is not None:
        events.extend(_postgres_events(jti, pg_log_dir))
    return sorted(events, key=lambda e: e.time)


def _mentions(value: Any, needles: tuple[str, ...]) -> bool:
    """Whether any field, at any depth, equals one of ``needles`` exactly."""
    if isinstance(value, str):
        return value in needles
    if isinstance(value, dict):
        return any(_mentions(v, needles) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, needles) for v in value)
    return False


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def _audit_events(jti: str, audit_dir: Path) -> Iterator[TraceEvent]:
    needles = (jti, role_name_for(jti))
    for path in sorted(audit_dir.glob("*.jsonl")):
        for record in _json_lines(path):
            if _mentions(record, needles):
                yield TraceEvent(
                    time=str(record.get("time", "")),
                    system=str(record.get("system", path.stem)),
                    event=str(record.get("event") or record.get("type") or "?"),
                    detail=_summary(record),
                )


def _postgres_events(jti: str, log_dir: Path) -> Iterator[TraceEvent]:
    role = role_name_for(jti)
    for path in sorted(log_dir.glob("*.json")):
        for record in _json_lines(path):
            if record.get("user") != role and record.get("application_name") != jti:
                continue
            message = str(record.get("message", ""))
            kind = "pgaudit" if message.startswith("AUDIT:") else "log"
            yield TraceEvent(
                time=_iso(str(record.get("timestamp", ""))),
                system="postgres",
                event=kind,
                detail=message[:160],
            )


def _iso(pg_timestamp: str) -> str:
    """``2026-12-03 15:00:00.123 UTC`` to ISO 8601, so it sorts with the rest."""
    stamp = pg_timestamp.replace(" UTC", "+00:00").replace(" ", "T", 1)
    return stamp


_SUMMARY_KEYS = ("tool", "sub", "outcome", "decision", "lease_id", "reason", "error")


def _summary(record: dict[str, Any]) -> str:
    parts = [
        f"{k}={record[k]}" for k in _SUMMARY_KEYS if record.get(k) not in (None, "")
    ]
    return " ".join(parts)[:160]
