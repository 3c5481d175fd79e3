"""Load FHIR R4 transaction bundles (Synthea's output) into ``clinical``.

The backend of ``trustloop load [PATH]``. PATH is one bundle file or a directory of
``*.json`` / ``*.json.gz`` bundles, read exactly as written: ``urn:uuid:``
references are resolved through the entries' ``fullUrl`` and rewritten to
``<Type>/<id>`` in the stored resource, as a FHIR server does when it processes a
transaction.

Guarantees:

- one database transaction per file: a bad file changes nothing;
- idempotent: resources are upserted by id, so loading again gives the same rows
  and the same counts;
- a patient's ``sensitive`` flag and care team are never written here (locally the
  demo set-up assigns them once, to patients that have no care team yet, and never
  changes them after), so loading more bundles never changes who may read whom;
- a resource already stored for one patient is never moved to another: a file
  whose Encounter, Condition, Observation or MedicationRequest id is stored under
  another subject is refused, and so is a file that names one resource twice;
- Patient, Practitioner, Encounter, Condition, Observation and MedicationRequest
  are stored; every other resource type is counted as skipped.

Limits (a bundle past them is refused, never truncated): 256 MiB per file after
decompression, JSON nested at most 64 deep (Synthea's go to 12), 1 MiB per stored
resource, and the field lengths in :mod:`trustloop.records.fhir_models`.

Errors::

    RecordsError                  PATH does not exist
     └── BundleError              a file is not JSON, not a FHIR Bundle, misses a
          │                       field we need, refers to a patient that is not
          │                       loaded, names a resource twice or one stored for
          │                       another patient, or passes a limit; names the
          │                       file and the reason (no patient
          │                       data in the message) and, in a directory load, how
          │                       many files before it were loaded
          └── NoBundleFilesError  a directory holds no *.json / *.json.gz file
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import psycopg
import structlog
from pydantic import ValidationError

from trustloop.json_depth import nested_deeper_than
from trustloop.records import fhir_models as fm
from trustloop.records.fhir_rows import TABLES, ResourceRow, to_row

MAX_FILE_BYTES = 256 * 1024 * 1024
"""A bundle file's size after decompression; a larger one is refused."""
MAX_DEPTH = 64
"""How deep a bundle's JSON may nest."""
MAX_RESOURCE_BYTES = 1024 * 1024
"""A stored resource's size as JSON (Synthea's largest are about 4 KiB)."""
IMPORT_LOCK = 0x7472_7573_746C_6F70  # "trustlop": the advisory lock loads take

ProgressCallback: TypeAlias = Callable[[int, int], None]
"""``progress(done, total)``: files committed so far, out of the files found."""

log = structlog.get_logger(__name__)


class RecordsError(Exception):
    """Base of the records package's errors."""


class BundleError(RecordsError):
    """A file that cannot be imported; nothing from it was written.

    ``loaded_before`` is set when the file was part of a directory load: that many
    files before it were loaded (and committed) and stay loaded.
    """

    def __init__(
        self, path: Path, reason: str, *, loaded_before: int | None = None
    ) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason
        self.loaded_before = loaded_before

    def __str__(self) -> str:
        message = f"{self.path}: {self.reason}"
        if self.loaded_before is None:
            return message
        if self.loaded_before == 1:
            return f"{message} (1 file before it was loaded)"
        return f"{message} ({self.loaded_before} files before it were loaded)"


class NoBundleFilesError(BundleError):
    """A directory with no bundle file in it; nothing was loaded."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "no FHIR bundle files (*.json, *.json.gz)")

    def __str__(self) -> str:
        return f"{self.reason} in {self.path}"


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
    """The bundle files under ``path`` (itself if a file), sorted by name.

    Raises :class:`NoBundleFilesError` for a directory without any.
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        if path.exists():  # a device, a pipe, a socket
            raise RecordsError(f"{path}: not a file or a folder")
        raise RecordsError(f"{path}: no such file or directory")

    found = [*path.glob("*.json"), *path.glob("*.json.gz")]
    files = sorted(p for p in found if p.is_file())
    if not files:
        raise NoBundleFilesError(path)
    return files


def load_bundles(
    conninfo_admin: str,
    path: Path,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import every bundle under ``path``, one transaction per file.

    Stops at the first bad file with :class:`BundleError`; files before it stay
    loaded, and for a directory the error says how many there were.
    ``conninfo_admin`` connects as a superuser (the importer is trusted tooling and
    bypasses row-level security).
    """
    files = bundle_files(path)
    report = ImportReport()

    with psycopg.connect(conninfo_admin, autocommit=True) as conn:
        for done, file in enumerate(files, start=1):
            try:
                report.add(load_bundle_file(conn, file))
            except BundleError as exc:
                if not path.is_dir():
                    raise
                raise BundleError(exc.path, exc.reason, loaded_before=done - 1) from exc
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
            # One file at a time across loads: the ownership check in _write then
            # sees every committed row, and a concurrent load cannot slip past it.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (IMPORT_LOCK,))
            _write(conn, rows)
    except _OwnedElsewhereError as exc:
        raise BundleError(path, str(exc)) from exc
    except (psycopg.IntegrityError, psycopg.DataError) as exc:
        raise BundleError(path, _database_reason(exc)) from exc
    return report


def _read_bundle(path: Path) -> fm.Bundle:
    doc = _read_json(path)
    if not isinstance(doc, dict):
        raise BundleError(path, f"not a FHIR resource ({_json_kind(doc)})")
    kind = doc.get("resourceType")
    if kind is None:
        raise BundleError(path, "not a FHIR resource (no resourceType)")
    if kind != "Bundle":
        raise BundleError(path, f"not a FHIR Bundle (resourceType {kind!r})")

    try:
        return fm.Bundle.model_validate(doc)
    except ValidationError as exc:
        raise BundleError(path, _validation_reason("Bundle", exc)) from exc


def _read_json(path: Path) -> Any:
    """The parsed document; every reason names a position, never the content."""
    raw = _read_bytes(path)
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise BundleError(path, f"not JSON ({where}: {exc.msg})") from exc
    except UnicodeDecodeError as exc:
        reason = f"not JSON (byte {exc.start}: not valid {exc.encoding} text)"
        raise BundleError(path, reason) from exc
    except RecursionError as exc:
        raise BundleError(path, f"nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:
        # Python refuses integers of more than 4,300 digits.
        raise BundleError(path, "not JSON (a number too long to read)") from exc
    if nested_deeper_than(doc, MAX_DEPTH):
        raise BundleError(path, f"nested deeper than {MAX_DEPTH} levels")
    try:  # "\ud800" is valid JSON but no text: PostgreSQL would refuse it later
        json.dumps(doc, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        reason = "holds text that is not valid Unicode (a lone surrogate)"
        raise BundleError(path, reason) from exc
    return doc


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed, at most :data:`MAX_FILE_BYTES` of them."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                raw = stream.read(MAX_FILE_BYTES + 1)
        else:
            with path.open("rb") as stream:
                raw = stream.read(MAX_FILE_BYTES + 1)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BundleError(path, "not gzip-compressed (or truncated)") from exc
    except OSError as exc:
        raise BundleError(path, f"cannot be read ({exc.strerror})") from exc
    if len(raw) > MAX_FILE_BYTES:
        limit = MAX_FILE_BYTES // (1024 * 1024)
        raise BundleError(path, f"larger than {limit} MiB (decompressed)")
    return raw


def _json_kind(doc: object) -> str:
    if isinstance(doc, list):
        return "a JSON array"
    if isinstance(doc, str):
        return "a JSON string"
    if isinstance(doc, bool):
        return "a JSON boolean"
    if isinstance(doc, int | float):
        return "a JSON number"
    return "JSON null"


def _rows_of(path: Path, bundle: fm.Bundle) -> tuple[list[ResourceRow], ImportReport]:
    urls = _reference_map(bundle)
    rows: list[ResourceRow] = []
    report = ImportReport(files=1)

    seen: set[tuple[str, str]] = set()

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
        rid = row.params["id"]
        if (kind, rid) in seen:
            raise BundleError(path, f"names {kind} {rid} twice")
        seen.add((kind, rid))
        if len(json.dumps(resource)) > MAX_RESOURCE_BYTES:
            limit = MAX_RESOURCE_BYTES // 1024
            raise BundleError(path, f"{kind} {rid} is larger than {limit} KiB")
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


class _OwnedElsewhereError(Exception):
    """A resource of the file is stored for another patient."""


def _write(conn: psycopg.Connection[Any], rows: list[ResourceRow]) -> None:
    # Parents first: patients before the resources that refer to them.
    for table in TABLES:
        batch = [row.params for row in rows if row.table is table]
        if not batch:
            continue
        with conn.cursor() as cur:
            if table.patient_scoped:
                ids = [params["id"] for params in batch]
                owners = [params["patient_id"] for params in batch]
                taken = cur.execute(table.owned_elsewhere, (ids, owners)).fetchone()
                if taken is not None:
                    raise _OwnedElsewhereError(
                        f"{taken[0]} is already stored for another patient"
                        f" (clinical.{table.name}); a load never moves a resource"
                    )
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
