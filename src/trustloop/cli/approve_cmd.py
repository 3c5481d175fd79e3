"""``trustloop approve --as <clinician> [--deny]``: answer a push from the terminal.

The terminal twin of the IdP's demo authenticator page (local profile only): it
signs the clinician in with the demo password, as the page does, and answers the
oldest pending step-up push through ``POST /authenticator/answers``.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer

from trustloop.cli.output import console, fail
from trustloop.devstack.demo import CLINICIANS, by_username
from trustloop.settings import Settings, require_local

TIMEOUT_S = 10.0


def approve(
    as_: Annotated[
        str, typer.Option("--as", help="Demo clinician's user name, e.g. achen.")
    ],
    deny: Annotated[
        bool, typer.Option("--deny", help="Decline the push instead.")
    ] = False,
) -> None:
    """Approve (or deny) the clinician's oldest pending step-up push."""
    if by_username(as_) is None:
        known = ", ".join(c.username for c in CLINICIANS)
        fail(f"unknown clinician {as_!r}; demo clinicians are: {known}")
    settings = Settings()
    require_local(settings, "trustloop approve")

    try:
        answer = answer_push(settings, as_, approve=not deny)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the IdP ({type(exc).__name__}); is the stack running?")
    if answer is None:
        fail(f"no pending approval for {as_}")
    verb = "approved" if answer.get("state") == "VERIFY_SUCCESS" else "denied"
    console.print(f"{verb}: {answer.get('message')}", markup=False)


def answer_push(
    settings: Settings, username: str, *, approve: bool
) -> dict[str, Any] | None:
    """The answered push (``id``, ``state``, ``message``), or None if none pends."""
    # Imported here: the dev-only password store is for the local profile only.
    from trustloop.devstack.idp.users import demo_password

    body = {
        "username": username,
        "password": demo_password(settings.state_dir, username),
        "decision": "approve" if approve else "deny",
    }
    url = f"{settings.idp_issuer}/authenticator/answers"
    with httpx.Client(timeout=TIMEOUT_S, trust_env=False) as http:
        response = http.post(url, json=body)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer
