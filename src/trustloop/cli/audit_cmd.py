"""``trustloop audit trace <jti>`` and ``trustloop audit verify``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from trustloop.audit.chain import verify_chain
from trustloop.audit.trace import TraceError
from trustloop.audit.trace import trace as trace_jti
from trustloop.cli.output import console, fail
from trustloop.devstack.postgres import ClusterError, load_info
from trustloop.settings import Settings

app = typer.Typer(help="Read the audit trail.", no_args_is_help=True)


@app.command()
def trace(jti: Annotated[str, typer.Argument(help="The OBO token's jti.")]) -> None:
    """One timeline of every system's records for one tool call."""
    settings = Settings()
    try:
        events = trace_jti(jti, settings.audit_dir, _postgres_log_dir(settings))
    except TraceError as exc:
        fail(str(exc))
    if not events:
        fail(f"no audit record mentions {jti}")
    table = Table("time", "system", "event", "detail")
    for event in events:
        table.add_row(event.time, event.system, event.event, event.detail)
    console.print(table)


def _postgres_log_dir(settings: Settings) -> Path | None:
    try:
        log_dir = load_info(settings.state_dir).log_dir()
    except ClusterError:
        return None
    return log_dir if log_dir.is_dir() else None


@app.command()
def verify() -> None:
    """Check the hash chain of every audit file."""
    files = sorted(Settings().audit_dir.glob("*.jsonl"))
    if not files:
        fail("no audit files yet")
    broken = False
    for path in files:
        result = verify_chain(path)
        if result is None:
            console.print(f"  ok      {path.name}")
        else:
            broken = True
            console.print(
                f"  BROKEN  {path.name} line {result.line_number}: {result.reason}"
            )
    if broken:
        raise typer.Exit(code=1)
