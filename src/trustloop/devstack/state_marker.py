"""The file that says a folder holds a trustloop stack's state.

Written whenever a command makes or uses a state folder (its PostgreSQL cluster,
the stack's lock), and required by ``trustloop down --delete``: a folder named by
mistake (``TRUSTLOOP_STATE_DIR=$HOME``) has no marker, so nothing in it is
deleted, even entries whose names the stack also uses.
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


def mark(state_dir: Path) -> None:
    """Create ``state_dir`` if needed and leave the marker in it; idempotent."""
    state_dir.mkdir(parents=True, exist_ok=True)
    marker = state_dir / MARKER
    if not marker.is_file():
        marker.write_text(_TEXT, encoding="utf-8")


def is_marked(state_dir: Path) -> bool:
    marker = state_dir / MARKER
    return marker.is_file() and not marker.is_symlink()
