"""``trustloop up``: start the local stack and keep it running until Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

from trustloop.cli.load_cmd import load_samples_if_empty
from trustloop.cli.output import console, fail
from trustloop.devstack.postgres import stop_cluster
from trustloop.devstack.stack import Stack, StackError, supervisor_pid
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


def down() -> None:
    """Stop the stack of this state folder: its supervisor, then PostgreSQL."""
    settings = Settings()
    require_local(settings, "the local stack")
    pid = supervisor_pid(settings.state_dir)
    if pid is not None:
        console.print(f"stopping the stack's supervisor (pid {pid})...")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + DOWN_TIMEOUT_S
        while supervisor_pid(settings.state_dir) is not None:
            if time.monotonic() > deadline:
                fail(
                    f"the supervisor (pid {pid}) did not stop in {DOWN_TIMEOUT_S:.0f} s"
                )
            time.sleep(0.2)
    # A supervisor that was killed outright leaves PostgreSQL (a daemon) behind.
    stop_cluster(settings.state_dir)
    console.print("stopped")
