"""Load FHIR R4 transaction bundles (Synthea's output) into ``clinical``.

The backend of ``trustloop load [PATH]``. PATH is one bundle file or a directory of
``*.json`` / ``*.json.gz`` bundles, read exactly as written: ``urn:uuid:``
references are resolved through the entries' ``fullUrl`` and rewritten to
``<Type>/<id>`` in the stored resource, as a FHIR server does when it processes a
transaction.

Guarantees:

- one database transaction per file: a bad file changes nothing;
- idempotent: resources are upserted by id, so loading again gives the same rows
  and the same counts (``sensitive`` and care teams are left alone);
- Patient, Practitioner, Encounter, Condition, Observation and MedicationRequest
  are stored; every other resource type is counted as skipped.

Errors::

    RecordsError
     └── BundleError      a file is not JSON, not a FHIR Bundle, misses a field we
                          need or refers to a patient that is not loaded; names the
                          file and the reason (no patient data in the message)
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import psycopg
import structlog
from pydantic import ValidationError

from trustloop.records import fhir_models as fm
from trustloop.records.fhir_rows import TABLES, ResourceRow, to_row

ProgressCallback: TypeAlias = Callable[[int, int], None]
"""``progress(done, total)``: files committed so far, out of the files found."""

log = structlog.get_logger(__name__)


class RecordsError(Exception):
    """Base of the records package's errors."""


class BundleError(RecordsError):
    """A file that cannot be imported; nothing from it was written."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class ImportReport:
    """What a load did: files read, resources stored and skipped, per type."""

    files: int = 0
    imported: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def add(self, other: ImportReport) -> None:
        self.files += other.files
        self.imported.update(other.imported)
        self.skipped.update(other.skipped)


def bundle_files(path: Path) -> list[Path]:
    """The bundle files under ``path`` (itself if a file), sorted by name."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise RecordsError(f"{path}: no such file or directory")
    found = [*path.glob("*.json"), *path.glob("*.json.gz")]
    return sorted(p for p in found if p.is_file())


def load_bundles(
    conninfo_admin: str,
    path: Path,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import every bundle under ``path``, one transaction per file.

    Stops at the first bad file with :class:`BundleError`; files before it stay
    loaded. ``conninfo_admin`` connects as a superuser (the importer is trusted
    tooling and bypasses row-level security).
    """
    files = bundle_files(path)
    report = ImportReport()

    with psycopg.connect(conninfo_admin, autocommit=True) as conn:
        for done, file in enumerate(files, start=1):
            report.add(load_bundle_file(conn, file))
            if progress is not None:
                progress(done, len(files))

    log.info("bundles_loaded", files=report.files, **dict(report.imported))
    return report


def import_path(
    conninfo_admin: str, path: Path, progress: ProgressCallback | None = None
) -> dict[str, int]:
    """``trustloop load PATH``: :func:`load_bundles`, answering stored counts per type."""
    return dict(load_bundles(conninfo_admin, path, progress).imported)


def load_bundle_file(conn: psycopg.Connection[Any], path: Path) -> ImportReport:
    """Import one bundle file in its own transaction (``conn`` in autocommit mode)."""
    bundle = _read_bundle(path)
    rows, report = _rows_of(path, bundle)

    try:
        with conn.transaction():
            _write(conn, rows)
    except (psycopg.IntegrityError, psycopg.DataError) as exc:
        raise BundleError(path, _database_reason(exc)) from exc
    return report


def _read_bundle(path: Path) -> fm.Bundle:
    try:
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        doc = json.loads(raw)
    except (OSError, EOFError, ValueError) as exc:
        raise BundleError(path, f"not JSON ({type(exc).__name__})") from exc

    kind = doc.get("resourceType") if isinstance(doc, dict) else type(doc).__name__
    if kind != "Bundle":
        raise BundleError(path, f"not a FHIR Bundle (resourceType {kind!r})")
    try:
        return fm.Bundle.model_validate(doc)
    except ValidationError as exc:
        raise BundleError(path, _validation_reason("Bundle", exc)) from exc


def _rows_of(path: Path, bundle: fm.Bundle) -> tuple[list[ResourceRow], ImportReport]:
    urls = _reference_map(bundle)
    rows: list[ResourceRow] = []
    report = ImportReport(files=1)

    for entry in bundle.entry:
        resource = _resolve_references(entry.resource, urls)
        kind = str(resource.get("resourceType", "?"))
        try:
            row = to_row(resource)
        except ValidationError as exc:
            raise BundleError(path, _validation_reason(kind, exc)) from exc
        except ValueError as exc:
            raise BundleError(path, f"{kind}: {exc}") from exc
        if row is None:
            report.skipped[kind] += 1
            continue
        rows.append(row)
        report.imported[kind] += 1
    return rows, report


def _reference_map(bundle: fm.Bundle) -> dict[str, str]:
    """``fullUrl`` -> ``<Type>/<id>`` for every entry that has both."""
    urls: dict[str, str] = {}
    for entry in bundle.entry:
        kind, rid = entry.resource.get("resourceType"), entry.resource.get("id")
        if entry.fullUrl and isinstance(kind, str) and isinstance(rid, str):
            urls[entry.fullUrl] = f"{kind}/{rid}"
    return urls


def _resolve_references(node: Any, urls: dict[str, str]) -> Any:
    """A copy of ``node`` with every resolvable ``reference`` rewritten."""
    if isinstance(node, list):
        return [_resolve_references(item, urls) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: _resolve_references(value, urls) for key, value in node.items()}
    ref = copy.get("reference")
    if isinstance(ref, str) and ref in urls:
        copy["reference"] = urls[ref]
    return copy


def _write(conn: psycopg.Connection[Any], rows: list[ResourceRow]) -> None:
    # Parents first: patients before the resources that refer to them.
    for table in TABLES:
        batch = [row.params for row in rows if row.table is table]
        if batch:
            with conn.cursor() as cur:
                cur.executemany(table.upsert, batch)


def _validation_reason(kind: str, exc: ValidationError) -> str:
    # include_input=False: the offending value may be patient data.
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "(root)"
    return f"invalid {kind}: {where}: {first['msg']}"


def _database_reason(exc: psycopg.Error) -> str:
    if isinstance(exc, psycopg.errors.ForeignKeyViolation):
        return "refers to a patient that is neither in the file nor already loaded"
    return f"rejected by the database ({type(exc).__name__})"
