"""``trustloop up`` runs the local stack until Ctrl-C; ``trustloop down`` stops it."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from trustloop.cli.load_cmd import load_samples_if_empty
from trustloop.cli.output import console, fail
from trustloop.devstack.postgres import stop_cluster
from trustloop.devstack.stack import Stack, StackError, supervisor_pid
from trustloop.devstack.state_folder import (
    StateFolderError,
    delete_state_folder,
    nested_demo,
)
from trustloop.settings import Settings, require_local

DOWN_TIMEOUT_S = 30.0


def up() -> None:
    """Start PostgreSQL, SPIFFE, IdP, Vault, MCP server, runtime and web app."""
    settings = Settings()
    require_local(settings, "the local stack")
    stack = Stack(settings)
    stopping = threading.Event()
    # A closed terminal (SIGHUP) or a service manager (SIGTERM) stops the stack too.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        start_and_report(stack)
        load_samples_if_empty(stack)
        print_sign_in(stack.settings)
        console.print("[bold green]ready[/] - Ctrl-C stops every part")
        stopping.wait()
    except KeyboardInterrupt:
        pass
    except StackError as exc:
        fail(str(exc))
    finally:
        _stop(stack)


def _stop(stack: Stack) -> None:
    """Stop every part even when the terminal or the pipe we print to is gone."""
    signal.signal(
        signal.SIGINT, signal.SIG_IGN
    )  # a second Ctrl-C must not cut it short
    running = stack.cluster is not None
    # rich turns a broken pipe (a `| tee` that died on the same Ctrl-C) into
    # SystemExit: nothing printed may keep the stack from stopping.
    if running:
        _say("stopping...")
    stack.stop()
    if running:
        _say("stopped")


def _say(message: str) -> None:
    with contextlib.suppress(OSError, SystemExit):
        console.print(message)


def start_and_report(stack: Stack) -> None:
    """Start ``stack`` and print where each part listens as it becomes ready."""
    console.print(f"starting the local stack in {stack.settings.state_dir}/")
    stack.start(on_ready=lambda name, where: console.print(f"  ✓ {name:<8} {where}"))


def print_sign_in(settings: Settings) -> None:
    """Where to open the app and how the demo clinicians sign in (local only).

    Passwords stay in the 0600 users file; each clinician's TOTP secret is shown
    as an ``otpauth://`` URI, the enrolment an authenticator app reads.
    """
    console.print(f"\nopen [bold]{settings.app_url}[/] and sign in")
    if settings.profile != "local":
        return
    from trustloop.devstack.demo import CLINICIANS
    from trustloop.devstack.idp.users import users_file

    path = users_file(settings.state_dir)
    console.print(f"demo clinicians (dev-only; passwords and TOTP secrets in {path}):")
    for clinician in CLINICIANS:
        label = f"  {clinician.username:<8} {clinician.name} ({clinician.role})"
        console.print(label, highlight=False)
        uri = _otpauth_uri(settings, clinician.username)
        if uri is not None:
            console.print(f"           TOTP: {uri}", highlight=False, soft_wrap=True)
    console.print(
        'a current code: .venv/bin/python -c "import pyotp,sys; '
        "print(pyotp.parse_uri(sys.argv[1]).now())\" '<otpauth URI>'",
        highlight=False,
        soft_wrap=True,
    )


def _otpauth_uri(settings: Settings, username: str) -> str | None:
    import pyotp

    from trustloop.devstack.idp.users import DemoUsersFileError, demo_totp

    try:
        secret = demo_totp(settings.state_dir, username)
    except (DemoUsersFileError, KeyError):
        return None
    totp = pyotp.TOTP(secret)
    return totp.provisioning_uri(name=username, issuer_name="trustloop local")


def down(
    delete: Annotated[
        bool,
        typer.Option(
            "--delete",
            help="Also delete the state folder's records, keys, audit and logs,"
            " and the demo's, wherever PostgreSQL keeps its files.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="With --delete: also a folder without the .trustloop-state marker"
            " (made by an older trustloop).",
        ),
    ] = False,
) -> None:
    """Stop the stack of this state folder: its supervisor, then PostgreSQL."""
    settings = Settings()
    require_local(settings, "the local stack")
    folders = [settings.state_dir]
    demo = nested_demo(settings.state_dir)
    if delete and demo is not None:  # the demo's stack first: its folder is inside
        folders.insert(0, demo)
    stopped = [folder for folder in folders if _stop_folder(folder)]
    console.print("stopped" if stopped else "nothing was running")
    if delete:
        try:
            kept = delete_state_folder(settings.state_dir, force=force)
        except StateFolderError as exc:
            fail(str(exc))
        if kept:
            console.print(
                f"deleted the stack's files; kept {settings.state_dir}/ because it"
                f" holds files trustloop did not write: {', '.join(kept)}"
            )
        else:
            console.print(f"deleted {settings.state_dir}/ and its database")


def _stop_folder(state_dir: Path) -> bool:
    """Stop the supervisor, then PostgreSQL; True if either was running."""
    pid = supervisor_pid(state_dir)
    if pid is not None:
        console.print(f"stopping the stack's supervisor (pid {pid})...")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + DOWN_TIMEOUT_S
        while supervisor_pid(state_dir) is not None:
            if time.monotonic() > deadline:
                fail(
                    f"the supervisor (pid {pid}) did not stop in {DOWN_TIMEOUT_S:.0f} s"
                )
            time.sleep(0.2)
    # A supervisor that was killed outright leaves PostgreSQL (a daemon) behind.
    return stop_cluster(state_dir) or pid is not None
