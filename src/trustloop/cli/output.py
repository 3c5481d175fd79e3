"""Shared console and the one way commands fail: a clear line, exit status 1."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def report_error(message: str) -> None:
    errors.print("[bold red]error:[/] ", end="", markup=True)
    errors.print(message, markup=False)


def fail(message: str) -> NoReturn:
    """Inside a command: one clear line on stderr, exit status 1."""
    report_error(message)
    raise typer.Exit(code=1)
