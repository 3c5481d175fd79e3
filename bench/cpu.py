"""CPU seconds used by each process of the local stack, read from ``/proc`` (Linux).

Each part's process (``utime + stime``, plus the reaped children's ``cutime +
cstime``), PostgreSQL's postmaster with its reaped backends (one per connection,
so every ephemeral login's backend is counted once it exits), and this
process (the benchmark's own clients). Differences of two snapshots say where
the CPU of a run went.
"""

from __future__ import annotations

import os
import resource
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from trustloop.devstack.stack import Stack

_TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu_s(pid: int) -> float:
    """Own and reaped children's CPU of ``pid``; 0.0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return 0.0
    # Fields after the command name (which may hold spaces): state is field 3.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / _TICKS


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def snapshot(stack: Stack) -> dict[str, float]:
    """CPU seconds so far per part, ``postgres`` (live and exited backends), ``bench``."""
    cpu: dict[str, float] = {}
    for part in stack.parts:
        if part.process is not None:
            cpu[part.name] = _process_cpu_s(part.process.pid)
    if stack.cluster is not None:
        pid = _postmaster_pid(stack.cluster.data_dir)
        if pid is not None:
            live = sum(_process_cpu_s(child) for child in _children(pid))
            cpu["postgres"] = _process_cpu_s(pid) + live
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu["bench"] = usage.ru_utime + usage.ru_stime
    return cpu


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}
