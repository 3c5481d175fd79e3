"""Join every system's audit records of one tool call on the OBO token's ``jti``.

Sources: the hash-chained JSON-lines files of the IdP, Vault, MCP server and
runtime (``<state>/audit/*.jsonl``) and PostgreSQL's ``jsonlog`` files. A chained
record joins when one of the fields that carry a call's identity
(:data:`JOIN_KEYS`, at any depth) EQUALS the ``jti`` or its role name
(``obo_<jti hex>``): a mention inside free text does not, nor does a value the
caller chose (a Vault request's ``request`` part, a runtime request's session
id), so a request anyone can send cannot add a row to another call's trace. A
PostgreSQL line joins when it ran as the ephemeral role, when its
``application_name`` is the ``jti``, or when its statement names the role as a
whole word (the lease engine's ``CREATE ROLE``, ``GRANT``, ``DROP ROLE``); a line
of a session that has not authenticated joins only when it tried to log in as the
role itself. A push the call's grant redeemed brings the IdP's lines of that push
(started, approved, denied, timed out), joined by its ``transaction_id``. The
result is one timeline ordered by time (every source's time read as UTC;
PostgreSQL's has millisecond precision).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trustloop.audit.lines import record_or_none
from trustloop.audit.records import (
    AuditEvent,
    from_audit_record,
    from_postgres_record,
    parse_time,
    role_name_for,
    roles_in_statement,
    unauthenticated,
)

__all__ = ["AuditEvent", "TraceError", "json_lines", "role_name_for", "trace"]

_JTI = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")
_UNKNOWN_TIME = datetime.min.replace(tzinfo=UTC)


class TraceError(ValueError):
    """The argument cannot be a ``jti``."""


def trace(jti: str, audit_dir: Path, pg_log_dir: Path | None) -> list[AuditEvent]:
    """Every record naming ``jti``, oldest first (ties keep file order)."""
    if not _JTI.fullmatch(jti):
        raise TraceError(f"{jti!r} is not a jti (8-128 letters, digits, . _ : -)")
    events = list(_audit_events(jti, audit_dir))
    if pg_log_dir is not None:
        events.extend(_postgres_events(jti, pg_log_dir))
    return sorted(events, key=_time_key)


def _time_key(event: AuditEvent) -> datetime:
    return parse_time(event.time) or _UNKNOWN_TIME


# Fields the systems set themselves to a jti or a role name: the IdP's ``jti`` and
# ``subject_jti``, Vault's ``jti`` and ``response.data.username``, the reaper's
# ``role``, the MCP server's ``jti``, the runtime's ``obo_jtis`` and
# ``tool_calls[].obo_jti``.
JOIN_KEYS = frozenset({"jti", "subject_jti", "obo_jti", "obo_jtis", "username", "role"})
_CALLER_CHOSEN = frozenset({"request"})  # Vault: the request as the caller sent it


def _mentions(value: Any, needles: tuple[str, ...], key: str | None = None) -> bool:
    """Whether a field of :data:`JOIN_KEYS`, at any depth, equals a needle."""
    if isinstance(value, dict):
        return any(
            _mentions(v, needles, str(k))
            for k, v in value.items()
            if k not in _CALLER_CHOSEN
        )
    if key not in JOIN_KEYS:
        return isinstance(value, list) and any(
            isinstance(v, dict) and _mentions(v, needles) for v in value
        )
    if isinstance(value, str):
        return value in needles
    if isinstance(value, list):
        return any(_mentions(v, needles, key) for v in value)
    return False


def json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of every JSON object line; other lines are skipped."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            record = record_or_none(line)
            if record is not None:
                yield number, record


# The IdP's own lines of one push. A stepped-up grant names the push it redeemed
# (``transaction_id``, an id the IdP made), so the push's lines join its call.
_PUSH_EVENTS = frozenset(
    {"step_up_started", "step_up_approved", "step_up_denied", "step_up_timed_out"}
)


def _audit_events(jti: str, audit_dir: Path) -> Iterator[AuditEvent]:
    needles = (jti, role_name_for(jti))
    pushes: set[str] = set()
    push_lines: list[tuple[Path, int, dict[str, Any]]] = []
    for path in sorted(audit_dir.glob("*.jsonl")):
        for number, record in json_lines(path):
            if _mentions(record, needles):
                if path.stem == "idp" and isinstance(record.get("transaction_id"), str):
                    pushes.add(record["transaction_id"])
                yield from_audit_record(
                    record, file=path.name, line=number, system=path.stem
                )
            elif path.stem == "idp" and record.get("event") in _PUSH_EVENTS:
                push_lines.append((path, number, record))
    for path, number, record in push_lines:
        if record.get("transaction_id") in pushes:
            yield from_audit_record(record, file=path.name, line=number, system="idp")


def _postgres_events(jti: str, log_dir: Path) -> Iterator[AuditEvent]:
    role = role_name_for(jti)
    for path in sorted(log_dir.glob("*.json")):
        for number, record in json_lines(path):
            if _names_role(record, jti, role):
                yield from_postgres_record(record, file=path.name, line=number)


def _names_role(record: dict[str, Any], jti: str, role: str) -> bool:
    if record.get("user") == role:
        return True  # a failed login as the role is about the role, too
    if record.get("application_name") == jti and not unauthenticated(record):
        return True
    # Text a client chose before logging in names nothing (roles_in_statement).
    return role in roles_in_statement(record)
