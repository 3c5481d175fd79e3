"""``trustloop up``: start the local stack and keep it running until Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import threading

from trustloop.cli.load_cmd import load_samples_if_empty
from trustloop.cli.output import console, fail
from trustloop.devstack.stack import Stack, StackError
from trustloop.settings import Settings, require_local


def up() -> None:
    """Start PostgreSQL, SPIFFE, IdP, Vault, MCP server and runtime; Ctrl-C stops."""
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
    with contextlib.suppress(OSError):
        console.print("stopping...")
    stack.stop()
    with contextlib.suppress(OSError):
        console.print("stopped")


def start_and_report(stack: Stack) -> None:
    """Start ``stack`` and print where each part listens as it becomes ready."""
    console.print(f"starting the local stack in {stack.settings.state_dir}/")
    stack.start(on_ready=lambda name, where: console.print(f"  ✓ {name:<8} {where}"))
