"""The ``trustloop`` command: run the local stack, load records, ask the assistant.

Every command turns expected failures (bad input, a part that will not start, a
refusal) into one clear line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import logging

import typer

from trustloop.cli import ask_cmd, audit_cmd, demo_cmd, load_cmd, stack_cmd
from trustloop.logging import configure

app = typer.Typer(
    help="trustloop: zero-trust AI agents for healthcare (local stack).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("up")(stack_cmd.up)
app.command("load")(load_cmd.load)
app.command("ask")(ask_cmd.ask)
app.command("demo")(demo_cmd.demo)
app.add_typer(audit_cmd.app, name="audit")


def main() -> None:
    # The commands speak through rich; library events only when something is wrong.
    configure("cli", level=logging.WARNING)
    app()
