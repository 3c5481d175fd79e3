"""The file that says a folder holds a trustloop stack's state.

Written whenever a command makes or uses a state folder (its PostgreSQL cluster,
the stack's lock), before anything else is written there, and required by
``trustloop down --delete``: a folder named by mistake
(``TRUSTLOOP_STATE_DIR=$HOME``) has no marker and is never given one, so nothing
in it is deleted, even entries whose names the stack also uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

MARKER = ".trustloop-state"
_TEXT = (
    "This folder holds a trustloop stack's state (records, keys, audit, logs).\n"
    "`trustloop down --delete` removes what trustloop wrote here.\n"
)


class ForeignFolderError(Exception):
    """The folder already holds files trustloop did not write; it was not adopted."""


def mark(state_dir: Path) -> None:
    """Create ``state_dir`` if needed and leave the marker in it; idempotent.

    Only a new or empty folder is adopted (or one holding nothing but the demo's
    own marked folder): a folder that already holds files without the marker
    may hold the user's ``logs/`` or ``audit/``, which a later ``down --delete``
    would take for the stack's. Raises :class:`ForeignFolderError` then, having
    written nothing.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    if is_marked(state_dir):
        return
    foreign = sorted(e.name for e in state_dir.iterdir() if not _demo_folder(e))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ForeignFolderError(
            f"{state_dir}/ already holds files trustloop did not write ({shown}):"
            " set TRUSTLOOP_STATE_DIR to a new or empty folder (a state folder"
            f" made before trustloop wrote its {MARKER} file can be emptied with"
            " `trustloop down --delete --force`)"
        )
    (state_dir / MARKER).write_text(_TEXT, encoding="utf-8")


def is_marked(state_dir: Path) -> bool:
    marker = state_dir / MARKER
    return marker.is_file() and not marker.is_symlink()


def _demo_folder(entry: Path) -> bool:
    """``trustloop demo``'s own state folder (``<state>/demo``), marked as ours."""
    return (
        entry.name == "demo"
        and entry.is_dir()
        and not entry.is_symlink()
        and is_marked(entry)
    )
