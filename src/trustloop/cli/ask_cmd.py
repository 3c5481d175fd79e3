"""``trustloop ask --as <clinician> "<question>"``."""

from __future__ import annotations

from typing import Annotated

import typer

from trustloop.app.runtime_client import InvocationError
from trustloop.cli.output import console, fail
from trustloop.cli.session import ask as ask_runtime
from trustloop.cli.session import sign_in
from trustloop.devstack.demo import CLINICIANS, by_username
from trustloop.identity.oauth import IdpUnavailableError, OAuthError
from trustloop.settings import Settings

MAX_QUESTION = 2000


def ask(
    question: Annotated[str, typer.Argument(help="What to ask the assistant.")],
    as_: Annotated[
        str, typer.Option("--as", help="Demo clinician's user name, e.g. achen.")
    ],
    session: Annotated[
        str | None, typer.Option(help="Conversation id (default: a new one).")
    ] = None,
) -> None:
    """Sign in as a demo clinician and print the assistant's streamed answer."""
    if not question.strip():
        fail('the question is empty: ask e.g. "list my patients"')
    if len(question) > MAX_QUESTION:
        fail(f"the question is longer than {MAX_QUESTION} characters")
    if by_username(as_) is None:
        known = ", ".join(c.username for c in CLINICIANS)
        fail(f"unknown clinician {as_!r}; demo clinicians are: {known}")

    settings = Settings()
    try:
        token = sign_in(settings, as_)
        answer = ask_runtime(
            settings, token, question, session_id=session, on_text=_print_chunk
        )
    except (OAuthError, IdpUnavailableError, InvocationError, OSError) as exc:
        fail(f"{exc} (is the stack running? start it with `trustloop up`)")
    console.print()
    for tool in answer.tools:
        jti = tool.get("obo_jti") or "-"
        console.print(
            f"[dim]tool {tool.get('name')}: {tool.get('status')}, jti {jti}[/]"
        )
    if any(tool.get("status") != "success" for tool in answer.tools):
        raise typer.Exit(code=1)  # a refused or failed tool call: scripts can tell


def _print_chunk(chunk: str) -> None:
    console.print(chunk, end="", markup=False)
