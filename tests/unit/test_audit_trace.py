"""audit trace: exact matches on the jti, never substrings of other values."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from trustloop.audit.chain import AuditLog
from trustloop.audit.records import jti_of_role, parse_time
from trustloop.audit.trace import role_name_for, trace

if TYPE_CHECKING:
    from pathlib import Path

JTI = "5b1e8c0e-8d7b-4b7e-9f3a-2f7d1c9e4a10"


def test_only_records_with_a_field_equal_to_the_jti_are_joined(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "mcp.jsonl", "mcp")
    log.append("tool_call", jti=JTI, outcome="ok")
    log.append("tool_call", jti=JTI[:-1] + "f", outcome="ok")  # another call
    log.append("note", text=f"prefix {JTI} suffix")  # a mention, not a field
    vault = AuditLog(tmp_path / "vault.jsonl", "vault")
    vault.append("response", response={"data": {"username": role_name_for(JTI)}})

    events = trace(JTI, tmp_path, None)

    assert [(e.system, e.event) for e in events] == [
        ("mcp", "tool_call"),
        ("vault", "response"),
    ]


def test_values_a_caller_chose_join_no_trace(tmp_path: Path) -> None:
    """Anyone may send Vault a request or the runtime a session id: no row."""
    vault = AuditLog(tmp_path / "vault.jsonl", "vault")
    vault.append(
        "request",
        type="request",
        request={"path": JTI, "data": {"jti": JTI, "role": role_name_for(JTI)}},
    )
    vault.append("response", jti=JTI, request={"path": "verify-rar/creds/clinical"})
    runtime = AuditLog(tmp_path / "runtime.jsonl", "runtime")
    runtime.append("invocation", session_id=JTI, request_id=JTI, outcome="rejected")
    runtime.append(
        "invocation",
        session_id="s",
        obo_jtis=[JTI],
        tool_calls=[{"name": "read_patient_record", "obo_jti": JTI}],
        outcome="answered",
    )
    idp = AuditLog(tmp_path / "idp.jsonl", "idp")
    idp.append("exchange_denied", subject_jti=JTI, sub="clin-achen")

    events = trace(JTI, tmp_path, None)

    assert [(e.system, e.event) for e in events] == [
        ("vault", "response"),
        ("runtime", "invocation"),
        ("idp", "exchange_denied"),
    ]
    assert events[1].outcome == "answered"  # not the rejected request


def test_role_name_is_obo_and_the_jti_without_dashes() -> None:
    assert role_name_for(JTI) == "obo_5b1e8c0e8d7b4b7e9f3a2f7d1c9e4a10"


# Real jsonlog lines (abridged) of one call, as PostgreSQL 15 with pgaudit writes them.
ROLE = role_name_for(JTI)
PG_LINES = [
    {
        "timestamp": "2026-12-03 16:17:31.026 UTC",
        "user": "trustloop_lease_engine",
        "error_severity": "LOG",
        "message": 'AUDIT: SESSION,3,1,ROLE,CREATE ROLE,,,"CREATE ROLE ""'
        + ROLE
        + '"" WITH LOGIN PASSWORD <REDACTED>",<not logged>',
    },
    {
        "timestamp": "2026-12-03 16:17:31.041 UTC",
        "user": ROLE,
        "error_severity": "LOG",
        "message": 'AUDIT: SESSION,1,1,READ,SELECT,,,"SELECT id FROM clinical.patients",'
        "<not logged>",
        "application_name": JTI,
    },
    {
        "timestamp": "2026-12-03 16:17:31.044 UTC",
        "user": ROLE,
        "error_severity": "LOG",
        "message": "disconnection: session time: 0:00:00.013 user=" + ROLE,
        "application_name": JTI,
    },
    {  # the reaper's query: names no role of this call
        "timestamp": "2026-12-03 16:17:31.045 UTC",
        "user": "trustloop_lease_engine",
        "error_severity": "LOG",
        "message": "AUDIT: SESSION,25,1,READ,SELECT,,,SELECT r.rolname FROM pg_roles r "
        "WHERE r.rolname ~ '^obo_[0-9a-f]{32}$',<not logged>",
    },
]


def _pg_log(directory: Path) -> Path:
    directory.mkdir()
    path = directory / "postgresql-2026-12-03_161724.json"
    path.write_text("".join(json.dumps(line) + "\n" for line in PG_LINES))
    return directory


def test_postgres_times_sort_among_the_iso_times_of_the_other_sources(
    tmp_path: Path,
) -> None:
    """16:17:31.027962 (Vault, ISO) falls between 31.026 and 31.041 (jsonlog)."""
    audit = tmp_path / "audit"
    audit.mkdir()
    (audit / "vault.jsonl").write_text(
        json.dumps(
            {
                "time": "2026-12-03T16:17:31.027962+00:00",
                "system": "vault",
                "event": "response",
                "jti": JTI,
                "error": "",
            }
        )
        + "\n"
    )

    events = trace(JTI, audit, _pg_log(tmp_path / "pglog"))

    assert [(e.system, e.event, e.outcome) for e in events] == [
        ("postgres", "CREATE ROLE", "ROLE"),
        ("vault", "response", "ok"),
        ("postgres", "SELECT", "READ"),
        ("postgres", "disconnection", "connection"),
    ]
    assert [e.time for e in events] == sorted(e.time for e in events)
    assert events[0].time == "2026-12-03T16:17:31.026000+00:00"
    assert {e.jti for e in events} == {JTI}


def test_outcomes_are_derived_per_source(tmp_path: Path) -> None:
    idp = AuditLog(tmp_path / "idp.jsonl", "idp")
    idp.append("token_exchanged", jti=JTI, rule="care_team")
    idp.append("token_introspected", jti=JTI, active=False)
    vault = AuditLog(tmp_path / "vault.jsonl", "vault")
    vault.append("request", type="request", request={"path": "sys/leases/revoke"})
    vault.append("response", type="response", jti=JTI, error="permission denied")
    mcp = AuditLog(tmp_path / "mcp.jsonl", "mcp")
    mcp.append("tool_call", jti=JTI, outcome="error", error="access_denied")
    runtime = AuditLog(tmp_path / "runtime.jsonl", "runtime")
    runtime.append("invocation", obo_jtis=[JTI], outcome="answered")

    events = trace(JTI, tmp_path, None)

    outcomes = {(e.system, e.event): e.outcome for e in events}
    assert outcomes == {
        ("idp", "token_exchanged"): "granted",
        ("idp", "token_introspected"): "inactive",
        ("vault", "response"): "error",
        ("mcp", "tool_call"): "error",
        ("runtime", "invocation"): "answered",
    }
    assert "error=access_denied" in next(e.detail for e in events if e.system == "mcp")


def test_parse_time_reads_postgres_offsets_and_refuses_unknown_zones() -> None:
    assert parse_time("2026-12-03 17:17:31.026 +01") == parse_time(
        "2026-12-03T16:17:31.026+00:00"
    )
    assert parse_time("2026-12-03 16:17:31.026 CET") is None
    assert jti_of_role(ROLE) == JTI
    assert jti_of_role("trustloop_admin") is None


def _jsonlog(**fields: object) -> str:
    """A PostgreSQL ``jsonlog`` line (fields as PostgreSQL 15 writes them)."""
    line = {"timestamp": "2026-12-04 22:16:53.753 UTC", "dbname": "trustloop"}
    return json.dumps({**line, **fields}) + "\n"


def test_text_a_client_sent_before_logging_in_plants_no_row(
    tmp_path: Path,
) -> None:
    """Anyone reaching the port chooses the user name of a failed login."""
    role = role_name_for(JTI)
    refused = {"ps": "authentication", "error_severity": "FATAL"}
    pg = tmp_path / "pg"
    pg.mkdir()
    (pg / "postgresql.json").write_text(
        _jsonlog(
            user=f"revoke FAILED; kept {role}",
            state_code="28P01",
            message=f'password authentication failed for user "revoke {role}"',
            **refused,
        )
        + _jsonlog(
            user="x",
            application_name=JTI,
            state_code="28000",
            message="no pg_hba.conf entry",
        )
        + _jsonlog(
            user=role,
            state_code="28P01",
            message=f'password authentication failed for user "{role}"',
            **refused,
        )
        + _jsonlog(  # options of a startup packet, logged before any login
            user="achen",
            ps="",
            backend_type="not initialized",
            error_severity="FATAL",
            state_code="22023",
            message=f'invalid value for parameter "replication": "kept {role}"',
        )
        + _jsonlog(
            user="trustloop_lease_engine",
            ps="CREATE ROLE",
            backend_type="client backend",
            error_severity="LOG",
            message=f"AUDIT: SESSION,1,1,ROLE,CREATE ROLE,,,CREATE ROLE {role},<none>",
        )
        + _jsonlog(
            user="trustloop_lease_engine",
            ps="DROP ROLE",
            backend_type="client backend",
            error_severity="ERROR",
            state_code="42704",
            message=f'role "{role}" does not exist',
            statement=f"DROP ROLE {role}",
        )
    )
    (tmp_path / "audit").mkdir()

    events = trace(JTI, tmp_path / "audit", pg)

    assert [e.line for e in events] == [3, 5, 6]
    assert events[0].outcome == "FATAL"  # an attempt on the role: shown as one
    assert [e.jti for e in events] == [JTI, JTI, JTI]


def test_a_redeemed_push_brings_its_own_lines(tmp_path: Path) -> None:
    """The approval behind a note or a restricted read is part of its call."""
    idp = AuditLog(tmp_path / "idp.jsonl", "idp")
    idp.append("step_up_started", transaction_id="t-1", sub="clin-achen")
    idp.append("step_up_started", transaction_id="t-2", sub="clin-achen")
    idp.append("step_up_approved", transaction_id="t-1", sub="clin-achen")
    idp.append("step_up_denied", transaction_id="t-2", sub="clin-achen")
    idp.append("token_exchanged", jti=JTI, transaction_id="t-1", rule="write_note")
    other = AuditLog(tmp_path / "runtime.jsonl", "runtime")
    other.append("step_up_started", transaction_id="t-1")  # not the IdP's own line

    events = trace(JTI, tmp_path, None)

    assert [(e.system, e.event, e.line) for e in events] == [
        ("idp", "step_up_started", 1),
        ("idp", "step_up_approved", 3),
        ("idp", "token_exchanged", 5),
    ]
