"""One audit record of any source, read into a common :class:`AuditEvent`.

Sources: the hash-chained JSON lines of the IdP, Vault, MCP server and runtime
(``<state>/audit/*.jsonl``, field ``system`` names the writer) and PostgreSQL's
``jsonlog`` lines (pgaudit and connection records). Every event gets a time in ISO
8601 UTC with microseconds, so events of all sources sort as strings and as times,
and an ``outcome``: what the record says happened, in the source's own words
(``granted``, ``denied``, ``ok``, ``error``, ``READ``, ``ROLE``, ``connection``...).

Nothing here copies a value the sources hold as a secret: the ``detail`` line is
built from ids (``tool``, ``lease_id``, ``rule``, paths) and never from HMAC'd or
free-text fields beyond PostgreSQL's object names.
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

ROLE_PREFIX = "obo_"
# An ephemeral role: ``obo_`` and the jti's 32 hex digits (contracts.md).
_ROLE = re.compile(r"(?<![0-9a-z_])obo_([0-9a-f]{32})(?![0-9a-z_])")
_PG_ZONE = re.compile(r"^(?P<stamp>.+?)\s*(?P<zone>UTC|GMT|[+-]\d{2}(?::?\d{2})?)$")
_SUMMARY_KEYS = (
    "tool",
    "sub",
    "decision",
    "rule",
    "lease_id",
    "role",
    "error",
    "reason",
)


@dataclass(frozen=True)
class AuditEvent:
    """One record of one source, in the fields every source can fill.

    ``jti`` is the OBO (or access) token ``jti`` the record names, if any; a
    runtime invocation that made several tool calls names them comma-separated.
    ``file`` and ``line`` locate the record (1-based line number).
    """

    time: str
    system: str
    event: str
    outcome: str
    jti: str | None
    detail: str
    file: str
    line: int

    def as_dict(self) -> dict[str, Any]:
        """The stable, machine-readable form (``audit trace --json``)."""
        return asdict(self)


def role_name_for(jti: str) -> str:
    """The ephemeral PostgreSQL role the lease engine creates for ``jti``."""
    return ROLE_PREFIX + jti.replace("-", "").lower()


def jti_of_role(role: str) -> str | None:
    """The UUID-form ``jti`` behind ``obo_<32 hex>``, or None for any other name."""
    match = _ROLE.fullmatch(role)
    if match is None:
        return None
    h = match.group(1)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def roles_named(message: str) -> list[str]:
    """Every ephemeral role name that appears as a whole word in ``message``."""
    return [ROLE_PREFIX + m.group(1) for m in _ROLE.finditer(message)]


# -- time ----------------------------------------------------------------------


def parse_time(stamp: str) -> datetime | None:
    """An ISO 8601 time or a PostgreSQL log time (``2026-12-03 15:00:00.123 UTC``).

    PostgreSQL writes ``log_timezone``'s abbreviation; the stack sets it to UTC.
    Numeric offsets are read too; any other zone name gives None (unknown).
    """
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        parsed = _parse_pg_time(stamp)
    if parsed is None or parsed.tzinfo is None:
        return None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset past the calendar's end
        return None


def _parse_pg_time(stamp: str) -> datetime | None:
    match = _PG_ZONE.match(stamp.strip())
    if match is None:
        return None
    try:
        local = datetime.fromisoformat(match["stamp"])
        return local.replace(tzinfo=_zone(match["zone"]))
    except ValueError:  # no such time, or an offset of a day or more
        return None


def _zone(zone: str) -> timezone:
    if zone in ("UTC", "GMT"):
        return UTC
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
    return timezone(sign * timedelta(minutes=minutes))


def iso_time(stamp: str) -> str:
    """``stamp`` as ISO 8601 UTC with microseconds; unchanged when unreadable."""
    parsed = parse_time(stamp)
    if parsed is None:
        return stamp
    return parsed.isoformat(timespec="microseconds")


# -- the chained audit files (IdP, Vault, MCP, runtime) ---------------------------


def from_audit_record(
    record: dict[str, Any], *, file: str, line: int, system: str
) -> AuditEvent:
    """An event of one chained audit line; ``system`` is the fallback writer name."""
    system = str(record.get("system") or system)
    event = str(record.get("event") or record.get("type") or "?")
    return AuditEvent(
        time=iso_time(str(record.get("time", ""))),
        system=system,
        event=event,
        outcome=outcome_of(system, event, record),
        jti=_jti_of(record),
        detail=_summary(system, record),
        file=file,
        line=line,
    )


def outcome_of(system: str, event: str, record: dict[str, Any]) -> str:
    """What one record says happened (see the module docstring)."""
    if system == "idp":
        return _idp_outcome(event, record)
    if system == "vault":
        return _vault_outcome(event, record)
    return str(record.get("outcome") or "")


_IDP_OUTCOMES = {
    "signed_in": "ok",
    "sign_in_failed": "failed",
    "token_exchanged": "granted",
    "exchange_denied": "denied",
    "token_revoked": "revoked",
    "session_logged_out": "logged_out",
}


def _idp_outcome(event: str, record: dict[str, Any]) -> str:
    if event == "token_introspected":
        return "active" if record.get("active") else "inactive"
    return _IDP_OUTCOMES.get(event) or str(record.get("outcome") or "")


def _vault_outcome(event: str, record: dict[str, Any]) -> str:
    # Vault's file device: a request line before handling, a response line after,
    # whose ``error`` is empty on success.
    if event == "request":
        return "request"
    if event == "response":
        return "error" if record.get("error") else "ok"
    if event == "lease_expired":
        return "revoked"
    return str(record.get("outcome") or "")


def _jti_of(record: dict[str, Any]) -> str | None:
    jti = record.get("jti")
    if isinstance(jti, str) and jti:
        return jti
    many = record.get("obo_jtis")
    if isinstance(many, list) and many:
        return ",".join(str(j) for j in many)
    return None


def _summary(system: str, record: dict[str, Any]) -> str:
    parts = [
        f"{k}={record[k]}" for k in _SUMMARY_KEYS if record.get(k) not in (None, "")
    ]
    if system == "vault":
        request = record.get("request")
        if isinstance(request, dict) and request.get("path"):
            parts.insert(0, f"path={request['path']}")
    return " ".join(parts)[:200]


# -- PostgreSQL jsonlog --------------------------------------------------------------

# pgaudit's CSV after "AUDIT: ": AUDIT_TYPE, STATEMENT_ID, SUBSTATEMENT_ID, CLASS,
# COMMAND, OBJECT_TYPE, OBJECT_NAME, STATEMENT, PARAMETER.
_PGAUDIT_FIELDS = 9
_ERROR_SEVERITIES = frozenset({"ERROR", "FATAL", "PANIC"})


def from_postgres_record(record: dict[str, Any], *, file: str, line: int) -> AuditEvent:
    """An event of one ``jsonlog`` line (pgaudit, connection or server message)."""
    message = str(record.get("message", ""))
    event, outcome, detail = _classify(message, str(record.get("error_severity", "")))
    detail = f"user={record.get('user', '')} {detail}".strip()
    return AuditEvent(
        time=iso_time(str(record.get("timestamp", ""))),
        system="postgres",
        event=event,
        outcome=outcome,
        jti=postgres_jti(record),
        detail=detail,
        file=file,
        line=line,
    )


def postgres_jti(record: dict[str, Any]) -> str | None:
    """The ``jti`` a PostgreSQL line is about: its ephemeral role, or one it names.

    A line of a session that never authenticated is about the role it tried to log
    in as, never about one its text names: its user name is whatever the client
    sent.
    """
    user = str(record.get("user", ""))
    if user.startswith(ROLE_PREFIX):
        app = record.get("application_name") if not unauthenticated(record) else None
        return str(app) if app else jti_of_role(user)
    named = roles_in_statement(record)
    return jti_of_role(named[0]) if named else None


def roles_in_statement(record: dict[str, Any]) -> list[str]:
    """The ephemeral roles a line names as part of what a session RAN.

    Only two kinds of line qualify, and only a session that has logged in can
    write either: a pgaudit record (``LOG``, ``AUDIT: ...``) and an error that
    carries the ``statement`` behind it. The text of any other line may be the
    client's own: a failed login as ``revoke FAILED; kept obo_<hex>``, or a
    startup packet whose ``replication`` option says so, is logged verbatim by a
    server that has not yet asked who is there.
    """
    message = str(record.get("message", ""))
    audited = message.startswith("AUDIT: ") and record.get("error_severity") == "LOG"
    if audited or "statement" in record:
        return roles_named(message)
    return []


def unauthenticated(record: dict[str, Any]) -> bool:
    """Whether a ``jsonlog`` line comes from a session that never logged in.

    Its ``user`` and options are what the client sent in its startup packet, so
    anyone who can reach the port can choose them.
    """
    state = str(record.get("state_code", ""))
    return (
        record.get("ps") in (None, "", "authentication", "startup")
        or record.get("backend_type") != "client backend"
        or state.startswith(("28", "08"))
    )


def _classify(message: str, severity: str) -> tuple[str, str, str]:
    """(event, outcome, detail) of a ``jsonlog`` message."""
    if message.startswith("AUDIT: "):
        fields = _pgaudit_fields(message)
        if fields is not None:
            command, object_type, object_name = fields[4], fields[5], fields[6]
            named = " ".join(roles_named(fields[7]))
            detail = f"{object_type} {object_name}" if object_name else named
            return command, fields[3], detail.strip()
    if severity in _ERROR_SEVERITIES:
        return "error", severity, message[:200]
    if message.startswith(("connection ", "disconnection")):
        return message.split(":", 1)[0], "connection", ""
    return "log", severity.lower(), message[:200]


def _pgaudit_fields(message: str) -> list[str] | None:
    try:
        row = next(csv.reader([message[len("AUDIT: ") :]]))
    except (csv.Error, StopIteration):
        return None
    return row if len(row) >= _PGAUDIT_FIELDS else None
