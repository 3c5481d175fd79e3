"""What bench/load.py checks after the calls: the database and the audit trail.

- ``obo_`` roles left in ``pg_roles`` once the leases have ended (must be 0);
- notes written (successful ``write_clinical_note`` calls, by OBO ``jti``) against
  rows of ``clinical.notes`` under those ``jti``s, and the same for medication
  changes and ``clinical.medication_changes``;
- audit lines per tool call per source, and completeness: every granted MCP
  ``tool_call`` has its IdP ``token_exchanged`` and a Vault response under its
  OBO ``jti``, every refused one an IdP ``exchange_denied`` (or a declined push).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from pathlib import Path

    from trustloop.devstack.postgres import ClusterInfo

AUDIT_SOURCES = ("idp", "vault", "mcp", "runtime")
ROLES_WAIT_S = 15.0


def audit_sizes(audit_dir: Path) -> dict[str, int]:
    return {s: _count(audit_dir / f"{s}.jsonl") for s in AUDIT_SOURCES}


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def new_records(audit_dir: Path, before: dict[str, int]) -> dict[str, list[Any]]:
    """The audit records written since ``before`` (line counts), per source."""
    records: dict[str, list[Any]] = {}
    for source in AUDIT_SOURCES:
        path = audit_dir / f"{source}.jsonl"
        lines = path.read_text().splitlines()[before[source] :] if path.exists() else []
        records[source] = [json.loads(line) for line in lines if line.strip()]
    return records


def roles_left(cluster: ClusterInfo) -> int:
    """``obo_`` roles once the leases have had time to end (bounded wait)."""
    deadline = time.monotonic() + ROLES_WAIT_S
    while True:
        with psycopg.connect(cluster.admin_conninfo()) as conn:
            row = conn.execute(
                r"select count(*) from pg_roles where rolname like 'obo\_%'"
            ).fetchone()
        left = int(row[0]) if row else 0
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def rows_by_jti(cluster: ClusterInfo, table: str, jtis: list[str]) -> int:
    """Rows of ``clinical.notes`` or ``clinical.medication_changes`` under ``jtis``."""
    statement = {
        "notes": "select count(*) from clinical.notes where obo_jti = any(%s)",
        "medication_changes": (
            "select count(*) from clinical.medication_changes where obo_jti = any(%s)"
        ),
    }[table]
    with psycopg.connect(cluster.admin_conninfo()) as conn:
        row = conn.execute(statement, (jtis,)).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class AuditFigures:
    calls: int
    granted: int
    denied: int
    step_ups: int
    per_call: dict[str, float]
    exchanged: int
    exchange_denied: int
    vault_jtis: int
    missing_idp: int
    missing_vault: int
    denied_unrecorded: int
    invocations: int

    @property
    def complete(self) -> bool:
        return not (self.missing_idp or self.missing_vault or self.denied_unrecorded)


def audit_figures(records: dict[str, list[Any]]) -> AuditFigures:
    """Counts and completeness of the trail over ``records`` (one run's lines)."""
    calls = [r for r in records["mcp"] if r.get("event") == "tool_call"]
    granted = {str(r["jti"]) for r in calls if r.get("decision") == "granted"}
    denied = [r for r in calls if r.get("decision") == "denied"]
    idp = records["idp"]
    exchanged = {str(r.get("jti")) for r in idp if r.get("event") == "token_exchanged"}
    idp_denied = [r for r in idp if r.get("event") == "exchange_denied"]
    declined = [r for r in idp if r.get("event") in {"step_up_denied", "push_denied"}]
    vault_jtis = {
        str(r.get("jti"))
        for r in records["vault"]
        if r.get("type") == "response" and r.get("jti")
    }
    n = max(1, len(calls))
    return AuditFigures(
        calls=len(calls),
        granted=len(granted),
        denied=len(denied),
        step_ups=sum(1 for r in calls if r.get("step_up")),
        per_call={s: len(records[s]) / n for s in AUDIT_SOURCES},
        exchanged=len(exchanged & granted),
        exchange_denied=len(idp_denied),
        vault_jtis=len(vault_jtis & granted),
        missing_idp=len(granted - exchanged),
        missing_vault=len(granted - vault_jtis),
        denied_unrecorded=max(0, len(denied) - len(idp_denied) - len(declined)),
        invocations=sum(
            1 for r in records["runtime"] if r.get("event") == "invocation"
        ),
    )
