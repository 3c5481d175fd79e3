"""Reading a child process's output in tests: wait for a line, with a deadline."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess


def wait_for_line(process: subprocess.Popen[str], needle: str, timeout: float) -> str:
    """Everything printed until a line containing ``needle``; fail after ``timeout``."""
    if process.stdout is None:
        raise AssertionError("the process was started without stdout=PIPE")
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen += line
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never printed; output so far:\n{seen}")
