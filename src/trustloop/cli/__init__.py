"""The ``trustloop`` command: run the local stack, load records, ask the assistant.

Every command turns expected failures (bad input, a part that will not start, a
refusal) into one clear line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import tomllib
from pathlib import Path

import typer
from pydantic import ValidationError

from trustloop.cli import (
    approve_cmd,
    ask_cmd,
    audit_cmd,
    demo_cmd,
    load_cmd,
    login_cmd,
    stack_cmd,
)
from trustloop.cli.output import errors, report_error
from trustloop.devstack.idp.users import DemoUsersFileError
from trustloop.devstack.postgres import ClusterError
from trustloop.devstack.stack import StackError
from trustloop.logging import configure
from trustloop.settings import ProfileError, unknown_variables, variable_of

app = typer.Typer(
    help="trustloop: zero-trust AI agents for healthcare (local stack).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("up")(stack_cmd.up)
app.command("down")(stack_cmd.down)
app.command("load")(load_cmd.load)
app.command("ask")(ask_cmd.ask)
app.command("approve")(approve_cmd.approve)
app.command("login")(login_cmd.login)
app.command("demo")(demo_cmd.demo)
app.add_typer(audit_cmd.app, name="audit")


def main() -> None:
    # The commands speak through rich; library events only when something is wrong.
    configure("cli", level=logging.WARNING)
    for name, meant in unknown_variables(os.environ).items():
        hint = f" (did you mean {meant}?)" if meant else ""
        errors.print(f"warning: {name} is not a trustloop setting{hint}", markup=False)
    try:
        app()
    except ValidationError as exc:
        report_error(f"invalid setting: {settings_problem(exc)}")
    except (ProfileError, DemoUsersFileError, ClusterError, StackError) as exc:
        report_error(str(exc))
    except tomllib.TOMLDecodeError as exc:
        report_error(f"trustloop.toml in {Path.cwd()}: not valid TOML ({exc})")
    except OSError as exc:
        report_error(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    sys.exit(1)


def settings_problem(exc: ValidationError) -> str:
    """The first invalid field, named as the environment variable that set it."""
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if not field:  # a rule across fields names them itself
        return message
    return f"{variable_of(field)}: {message}"
