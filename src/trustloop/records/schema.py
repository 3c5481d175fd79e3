"""The clinical and access schemas, their roles and row-level security.

:func:`apply_schema` runs the SQL files shipped in ``trustloop/records/sql/`` in
name order, in one transaction, as a superuser. Every file is idempotent: applying
the schema again changes nothing and loses no data.

What the schema guarantees (docs/contracts.md): every ``clinical`` table has
row-level security enabled and forced; an ephemeral role (a member of
``clinical_reader``) sees only the rows its ``access.grants`` row allows, looked up by
``session_user``; it cannot read ``access.grants`` itself. A write grant
(``clinical_note_writer``, ``clinical_medication_writer``) makes one write, on its
one patient, of the one change whose SHA-256 the grant names; the database sets
the author and OBO ``jti`` from the grant row and keeps medication history
(``035_writes.sql``).
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

import psycopg
import structlog

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

log = structlog.get_logger(__name__)


def schema_files() -> list[tuple[str, str]]:
    """``(name, sql)`` of every shipped schema file, in the order they apply."""
    folder = resources.files("trustloop.records") / "sql"
    entries = [e for e in folder.iterdir() if e.name.endswith(".sql")]
    return [(e.name, e.read_text(encoding="utf-8")) for e in sorted(entries, key=_name)]


def apply_schema(conninfo_admin: str) -> None:
    """Create or update roles, schemas, tables, functions, policies and grants.

    ``conninfo_admin`` must connect as a superuser to the ``trustloop`` database
    (``ClusterInfo.admin_conninfo()`` locally). All or nothing.
    """
    with psycopg.connect(conninfo_admin) as conn:
        for name, text in schema_files():
            conn.execute(text.encode("utf-8"))
            log.debug("schema_file_applied", file=name)
    log.info("schema_applied")


def _name(entry: Traversable) -> str:
    return entry.name
