"""FHIR R4 resources as the tools return them, validated before they leave.

docs/contracts.md, "Tools": every resource a tool returns is checked against the
``fhir.resources`` R4B model of its type (R4B is R4 plus errata for these
resources; fhir.resources ships no plain R4 package). The resource that leaves
is the stored document itself, unchanged; validation only decides whether it
may leave. A resource that does not validate fails the call as
``server_error`` and is logged by type, id and failing field names, never by
value. All resources of the bundled Synthea samples validate as imported
(``tests/integration/test_mcp_tools_fhir.py`` checks every one).

What fhir.resources checks: structure, cardinality, datatypes (ids, dates,
references) and required fields; it does not check codes against their value
sets (an unknown ``status`` code passes), so the tools' own inputs are checked
by :mod:`trustloop.tools.inputs`.

Validation is a pure function of a resource's content, so a process remembers
the content digests (BLAKE2b over canonical JSON, sorted keys; digests only,
never content) of the last :data:`VALIDATED_DIGESTS` resources that validated,
and a resource whose digest it holds leaves without validating again: the same
imported resources come back in every read of a chart, and hashing one costs
about a tenth of validating it. Any change to a resource changes its digest, so
it is validated anew; a resource that fails is never remembered.

Notes are not stored as FHIR; :func:`document_reference` makes one of a
``clinical.notes`` row: the text as a base64 ``text/plain`` attachment and as
the resource's narrative, the author as ``Practitioner/<sub>``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import structlog
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from trustloop.identity.rhythm import ToolCallError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fhir.resources.R4B.resource import Resource

Json = dict[str, Any]

_MODELS: dict[str, type[Resource]] = {
    "Patient": Patient,
    "Condition": Condition,
    "MedicationRequest": MedicationRequest,
    "Observation": Observation,
    "Encounter": Encounter,
    "DocumentReference": DocumentReference,
}
# LOINC 11506-3 "Progress note"; US Core's clinical-note category.
_NOTE_TYPE = {
    "coding": [
        {"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}
    ],
    "text": "Progress note",
}
_NOTE_CATEGORY = {
    "coding": [
        {
            "system": "http://hl7.org/fhir/us/core/CodeSystem/"
            "us-core-documentreference-category",
            "code": "clinical-note",
            "display": "Clinical Note",
        }
    ]
}

log = structlog.get_logger(__name__)

VALIDATED_DIGESTS = 65536  # about 8 MB at most


class _Digests:
    """The digests of resources that validated; least recently used dropped."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, digest: bytes) -> bool:
        with self._lock:
            if digest not in self._seen:
                return False
            self._seen.move_to_end(digest)
            return True

    def add(self, digest: bytes) -> None:
        with self._lock:
            self._seen[digest] = None
            self._seen.move_to_end(digest)
            if len(self._seen) > self._capacity:
                self._seen.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


_validated = _Digests(VALIDATED_DIGESTS)


def _digest(resource: Json, kind: str) -> bytes | None:
    try:
        canonical = json.dumps(
            resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
    except (TypeError, ValueError):  # not plain JSON: validate it every time
        return None
    hashed = hashlib.blake2b(kind.encode("ascii"), digest_size=32)
    hashed.update(b"\0")
    hashed.update(canonical.encode("utf-8", "surrogatepass"))
    return hashed.digest()


def forget_validated() -> None:
    """Forget every remembered digest (tests)."""
    _validated.clear()


def validated(resource: object, kind: str) -> Json:
    """``resource`` itself once it validates as an R4B ``kind`` (now, or earlier
    with the same content).

    Raises :class:`ToolCallError` (``server_error``) otherwise.
    """
    model = _MODELS[kind]
    if not isinstance(resource, dict) or resource.get("resourceType") != kind:
        log.error("fhir_resource_unexpected", resource_type=kind)
        raise ToolCallError("server_error", f"a stored record ({kind}) is malformed")
    digest = _digest(resource, kind)
    if digest is not None and digest in _validated:
        return resource
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        fields = sorted(
            {
                ".".join(str(part) for part in error["loc"])
                for error in exc.errors(include_input=False, include_url=False)
            }
        )
        log.error(
            "fhir_validation_failed",
            resource_type=kind,
            resource_id=_id_of(resource),
            fields=fields,
        )
        raise ToolCallError(
            "server_error", f"a stored record ({kind}) failed FHIR R4B validation"
        ) from exc
    if digest is not None:
        _validated.add(digest)
    return resource


def all_validated(resources: Iterable[object], kind: str) -> list[Json]:
    return [validated(resource, kind) for resource in resources]


def document_reference(note: Json) -> Json:
    """A ``clinical.notes`` row (``id``, ``patient_id``, ``author_sub``,
    ``text``, ``created_at``) as a validated FHIR DocumentReference."""
    text = str(note["text"])
    created = note["created_at"]
    when = created if isinstance(created, str) else created.isoformat()
    resource: Json = {
        "resourceType": "DocumentReference",
        "id": str(note["id"]),
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
            f"{html.escape(text)}</div>",
        },
        "status": "current",
        "docStatus": "final",
        "type": _NOTE_TYPE,
        "category": [_NOTE_CATEGORY],
        "subject": {"reference": f"Patient/{note['patient_id']}"},
        "date": when,
        "author": [{"reference": f"Practitioner/{note['author_sub']}"}],
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
                    "creation": when,
                }
            }
        ],
    }
    return validated(resource, "DocumentReference")


def note_text_of(document: Json) -> str:
    """The plain text of a :func:`document_reference` (its attachment)."""
    data = document["content"][0]["attachment"]["data"]
    return base64.b64decode(data).decode("utf-8")


def _id_of(resource: Json) -> str | None:
    rid = resource.get("id")
    return rid if isinstance(rid, str) and len(rid) <= 64 else None
