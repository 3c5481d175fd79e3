"""Shared console and the one way commands fail: a clear line, exit status 1."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False)


def fail(message: str) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(code=1)
