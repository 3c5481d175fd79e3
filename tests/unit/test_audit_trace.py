"""audit trace: exact matches on the jti, never substrings of other values."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustloop.audit.chain import AuditLog
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


def test_role_name_is_obo_and_the_jti_without_dashes() -> None:
    assert role_name_for(JTI) == "obo_5b1e8c0e8d7b4b7e9f3a2f7d1c9e4a10"
