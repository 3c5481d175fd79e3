"""Deleting a state folder: what the stack wrote there, and its PostgreSQL cluster.

The cluster's files may live outside the folder (``/var/lib/trustloop/<hash>/``
for a clone under ``/root``, see :func:`trustloop.devstack.postgres.cluster`), so
deleting the folder alone would leave a database that the next start reuses.
Only the entries the stack writes are deleted, so a state folder pointed at a
place that holds other files (``TRUSTLOOP_STATE_DIR=$HOME``) loses none of them.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from trustloop.devstack.postgres import destroy_cluster

if TYPE_CHECKING:
    from pathlib import Path

DEMO_FOLDER = "demo"  # ``trustloop demo`` runs its own stack in <state>/demo
WRITTEN = frozenset(
    {"audit", "cli", "idp", "logs", "postgres", "spire", "stack.lock", "vault"}
)


def delete_state_folder(state_dir: Path) -> list[str]:
    """Delete the stack's files under ``state_dir`` (the demo's too); what is left.

    The caller stops the stacks first. Returns the entries that were not the
    stack's and so were kept (the folder itself then stays).
    """
    if not state_dir.is_dir():
        destroy_cluster(state_dir)  # a relocated cluster outlives its folder
        return []
    kept: list[str] = []
    demo = state_dir / DEMO_FOLDER
    if demo.is_dir():
        kept += [f"{DEMO_FOLDER}/{name}" for name in delete_state_folder(demo)]
    destroy_cluster(state_dir)
    for entry in sorted(state_dir.iterdir()):
        if entry.name == DEMO_FOLDER:
            continue  # still there: it holds files counted above
        if entry.name not in WRITTEN:
            kept.append(entry.name)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    if not kept and not state_dir.is_symlink():  # a link stays; its target is empty
        state_dir.rmdir()
    return kept
