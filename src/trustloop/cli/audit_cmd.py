"""``trustloop audit trace <jti>``, ``trustloop audit tail`` and ``audit verify``."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from trustloop.audit.chain import verify_chain
from trustloop.audit.tail import Sources
from trustloop.audit.tail import tail as tail_sources
from trustloop.audit.trace import TraceError
from trustloop.audit.trace import trace as trace_jti
from trustloop.cli.output import console, errors, fail
from trustloop.devstack.postgres import ClusterError, load_info
from trustloop.settings import Settings

if TYPE_CHECKING:
    from trustloop.audit.records import AuditEvent

app = typer.Typer(help="Read the audit trail.", no_args_is_help=True)


@app.command()
def trace(
    jti: Annotated[str, typer.Argument(help="The OBO token's jti.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON array of the events.")
    ] = False,
) -> None:
    """One timeline of every system's records for one tool call."""
    settings = Settings()
    _require_audit_dir(settings)
    try:
        events = trace_jti(jti, settings.audit_dir, _postgres_log_dir(settings))
    except TraceError as exc:
        fail(str(exc))
    if not events:
        fail(f"no audit record mentions {jti}")
    _warn_if_changed(settings.audit_dir, events)

    if as_json:
        typer.echo(json.dumps([e.as_dict() for e in events], indent=2))
        return
    # Never cut: times fold in narrow terminals, details wrap.
    table = Table(show_lines=False)
    table.add_column("time", no_wrap=False, overflow="fold", min_width=15)
    for name in ("system", "event", "outcome"):
        table.add_column(name, overflow="fold")
    table.add_column("detail", overflow="fold")
    for event in events:  # Text: a value is shown as written, never as markup
        table.add_row(
            *(
                Text(shown(value))
                for value in (
                    event.time,
                    event.system,
                    event.event,
                    event.outcome,
                    event.detail,
                )
            )
        )
    console.print(table)


def _warn_if_changed(audit_dir: Path, events: list[AuditEvent]) -> None:
    """Say on stderr which of the chained files shown fail ``audit verify``.

    The timeline is still printed (it is what the files say), but a record of a
    file whose chain is broken may have been changed after it was written.
    """
    for name in sorted({e.file for e in events if e.system != "postgres"}):
        found = verify_chain(audit_dir / name)
        if found is not None:
            errors.print(
                f"warning: {name} fails verification (line {found.line_number}:"
                f" {found.reason}); its records below may have been changed"
                " (`trustloop audit verify`)",
                markup=False,
            )


@app.command()
def tail(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, help="How many latest events.")
    ] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line.")
    ] = False,
    all_postgres: Annotated[
        bool,
        typer.Option("--all-postgres", help="Also PostgreSQL lines of no tool call."),
    ] = False,
) -> None:
    """The latest events of every source, merged; with -f, follow them (Ctrl-C)."""
    settings = Settings()
    _require_audit_dir(settings)
    sources = Sources(
        settings.audit_dir, _postgres_log_dir(settings), all_postgres=all_postgres
    )
    stream = tail_sources(sources, count=lines, follow=follow)
    try:
        for event in stream:
            typer.echo(json.dumps(event.as_dict()) if as_json else _line(event))
    except KeyboardInterrupt:
        stream.close()  # Ctrl-C ends following; that is the normal way out


def _line(event: AuditEvent) -> str:
    return shown(
        f"{event.time}  {event.system:<8} {event.event:<20} "
        f"{event.jti or '-':<36}  {event.outcome}"
    )


def shown(value: str) -> str:
    """``value`` safe for a terminal: control and format characters escaped.

    Audit records hold values callers chose (a Vault request's path, a runtime
    session id); an escape sequence among them must not clear the screen or
    forge a line, and a bidi override must not reorder what is read.
    """
    return "".join(
        char if unicodedata.category(char) not in _HIDDEN else _escaped(char)
        for char in value
    )


_HIDDEN = frozenset({"Cc", "Cf", "Co", "Cs", "Zl", "Zp"})


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _require_audit_dir(settings: Settings) -> None:
    """A missing folder is a wrong state folder, not an empty trail: say so."""
    if not settings.audit_dir.is_dir():
        fail(
            f"no audit folder at {settings.audit_dir}/: start the stack there first,"
            " or set TRUSTLOOP_STATE_DIR to the stack's state folder"
        )


def _postgres_log_dir(settings: Settings) -> Path | None:
    try:
        log_dir = load_info(settings.state_dir).log_dir()
    except ClusterError:
        return None
    return log_dir if log_dir.is_dir() else None


@app.command()
def verify() -> None:
    """Check the hash chain of every audit file."""
    settings = Settings()
    _require_audit_dir(settings)
    files = sorted(settings.audit_dir.glob("*.jsonl"))
    if not files:
        fail(f"no audit files yet in {settings.audit_dir}/")
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
