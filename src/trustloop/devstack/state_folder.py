"""Deleting a state folder: what the stack wrote there, and its PostgreSQL cluster.

The cluster's files may live outside the folder (``/var/lib/trustloop/<hash>/``
for a clone under ``/root``, see :func:`trustloop.devstack.postgres.cluster`), so
deleting the folder alone would leave a database that the next start reuses.

Only a folder carrying the stack's marker (:mod:`.state_marker`) is touched, and
in it only the entries the stack writes, never through a link: a state folder
named by mistake (``TRUSTLOOP_STATE_DIR=$HOME``) loses nothing. ``force`` accepts
a folder without the marker (made before the marker existed); ``/`` and the home
folder are refused even then.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from trustloop.devstack.postgres import destroy_cluster
from trustloop.devstack.state_marker import MARKER, is_marked

DEMO_FOLDER = "demo"  # ``trustloop demo`` runs its own stack in <state>/demo
WRITTEN = frozenset(
    {"audit", "cli", "idp", "logs", "postgres", "spire", "stack.lock", "vault"}
)


class StateFolderError(Exception):
    """The folder is not one the stack made; nothing was deleted."""


def nested_demo(state_dir: Path) -> Path | None:
    """The demo's own state folder inside ``state_dir``, if it is a real one."""
    demo = state_dir / DEMO_FOLDER
    if demo.is_dir() and not demo.is_symlink():
        return demo
    return None


def delete_state_folder(state_dir: Path, *, force: bool = False) -> list[str]:
    """Delete the stack's files under ``state_dir`` (the demo's too); what is left.

    The caller stops the stacks first. Returns the entries that were not the
    stack's and so were kept (the folder itself then stays). Raises
    :class:`StateFolderError` before deleting anything when the folder is not
    the stack's.
    """
    if not state_dir.is_dir():
        destroy_cluster(state_dir)  # a relocated cluster outlives its folder
        return []
    _check_ours(state_dir, force=force)
    kept: list[str] = []
    demo = nested_demo(state_dir)
    if demo is not None and (force or is_marked(demo)):
        done = delete_state_folder(demo, force=force)
        kept += [f"{DEMO_FOLDER}/{name}" for name in done]
    listed = {DEMO_FOLDER} if kept else set()  # the demo's leftovers are named
    destroy_cluster(state_dir)
    for entry in sorted(state_dir.iterdir()):
        if entry.name == MARKER:
            continue  # last: a folder half deleted is still known as ours
        if entry.name not in WRITTEN:
            if entry.name not in listed:
                kept.append(entry.name)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    if kept:
        return sorted(kept)
    (state_dir / MARKER).unlink(missing_ok=True)
    if not state_dir.is_symlink():  # a link stays; its target is empty
        state_dir.rmdir()
    return []


def _check_ours(state_dir: Path, *, force: bool) -> None:
    real = state_dir.resolve()
    if real in (Path("/"), Path.home().resolve()):
        raise StateFolderError(f"{state_dir} is / or the home folder: not deleting it")
    if not force and not is_marked(state_dir):
        raise StateFolderError(
            f"{state_dir}/ has no {MARKER} file, so it may not be a trustloop state"
            " folder; nothing was deleted (--force deletes the entries trustloop"
            " writes, in a folder made by an older trustloop)"
        )
