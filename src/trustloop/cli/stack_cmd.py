"""``trustloop up``: start the local stack and keep it running until Ctrl-C."""

from __future__ import annotations

import signal
import threading

from trustloop.cli.load_cmd import load_samples_if_empty
from trustloop.cli.output import console, fail
from trustloop.devstack.stack import Stack, StackError
from trustloop.settings import Settings


def up() -> None:
    """Start PostgreSQL, SPIFFE, IdP, Vault, MCP server and runtime; Ctrl-C stops."""
    stack = Stack(Settings())
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
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
        console.print("stopping...")
        stack.stop()


def start_and_report(stack: Stack) -> None:
    """Start ``stack`` and print where each part listens as it becomes ready."""
    console.print(f"starting the local stack in {stack.settings.state_dir}/")
    stack.start(on_ready=lambda name, where: console.print(f"  ✓ {name:<8} {where}"))
