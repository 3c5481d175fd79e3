"""``trustloop ask --as <clinician> "<question>"``."""

from __future__ import annotations

from typing import Annotated

import typer

from trustloop.app.runtime_client import InvocationError
from trustloop.cli.output import console, fail
from trustloop.cli.session import ask as ask_runtime
from trustloop.cli.session import sign_in, traced
from trustloop.devstack.demo import CLINICIANS, by_username
from trustloop.identity.oauth import IdpUnavailableError, OAuthError
from trustloop.settings import Settings

MAX_QUESTION = 2000
# The runtime's answers say this while a step-up or consent push waits.
ON_DEVICE = "on your device"


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
    printer = _Printer(_approve_hint(settings, as_))
    try:
        token = sign_in(settings, as_)
        answer = ask_runtime(
            settings, token, question, session_id=session, on_text=printer
        )
    except (OAuthError, IdpUnavailableError, InvocationError, OSError) as exc:
        fail(
            f"{exc} (asked the IdP at {settings.idp_url} with the demo passwords"
            f" in {settings.state_dir}/: is a stack running there? `trustloop up`"
            " starts one; for a stack started with other TRUSTLOOP_STATE_DIR or"
            " TRUSTLOOP_*_URL settings, set the same ones for `ask`)"
        )
    console.print()
    for tool in answer.tools:
        console.print(f"[dim]tool {tool.get('name')}: {traced(tool, token)}[/]")
    if any(tool.get("status") != "success" for tool in answer.tools):
        raise typer.Exit(code=1)  # a refused or failed tool call: scripts can tell


class _Printer:
    """Prints the streamed answer; says once how to answer a push, locally."""

    def __init__(self, hint: str | None) -> None:
        self._hint = hint
        self._seen = ""

    def __call__(self, chunk: str) -> None:
        console.print(chunk, end="", markup=False)
        if self._hint is None:
            return
        self._seen = (self._seen + chunk)[-200:]  # the phrase may span two chunks
        if ON_DEVICE in self._seen:
            console.print(f"\n[dim]{self._hint}[/]")
            self._hint = None


def _approve_hint(settings: Settings, username: str) -> str | None:
    """Where the local stack's pushes are answered; None outside ``local``."""
    if settings.profile != "local":
        return None
    return (
        f"(local stack: answer the push with `trustloop approve --as {username}`"
        f" [--deny] in another terminal, or at {settings.idp_url}/authenticator)"
    )
