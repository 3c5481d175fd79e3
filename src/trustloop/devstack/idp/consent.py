"""The message of a push, and the exact change a consent push must carry.

docs/contracts.md, "Writes": a write's challenge names ``change_sha256``; the
verification request must carry the change itself, ``transactionData.
additionalData: [{"name": "change", "value": <text>}]``, whose SHA-256 (UTF-8) is
exactly that digest, or it is refused (400 ``invalid_request``). A read's push
carries no change. The IdP writes the message the clinician sees from the
challenge and the checked change, never from the client's own message.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any

from trustloop.devstack.idp.errors import invalid_request
from trustloop.records.changes import MEDICATION_STATUSES

_MESSAGES = {
    "read": "Read the chart of {patient}?",
    "write_note": "Add a note to the chart of {patient}?",
    "update_medication": "Change a medication of {patient}?",
}
_RESOURCE = re.compile(r"MedicationRequest/[A-Za-z0-9\-.]{1,64}")
_STATUSES = frozenset({"", *MEDICATION_STATUSES})
# Controls, format characters (bidi overrides, zero-width), surrogates, private use.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
# Longer than any change a write tool sends (a note is at most 4000 characters).
MAX_CHANGE_CHARS = 8000


def push_message(details: list[dict[str, Any]], change: str | None = None) -> str:
    """What the clinician is asked; patient names are not known to the IdP.

    A write's push shows the exact change (docs/contracts.md, "Writes"): the
    note's text, or the medication and its new status and dosage.
    """
    detail = details[0]
    identifier = str(detail.get("identifier", ""))
    patient = identifier.removeprefix("Patient/")
    action = next(iter(detail.get("actions", [])), "")
    if change is not None and action == "write_note":
        return f"Add this note to the chart of {identifier}: \u201c{change}\u201d?"
    if change is not None and action == "update_medication":
        resource, shown = _medication_change(change)
        return f"Change {resource} of {identifier}: {shown}?"
    template = _MESSAGES.get(action, "Allow {action} on {patient}?")
    return template.format(patient=patient, action=action)


def _medication_change(change: str) -> tuple[str, str]:
    """(``MedicationRequest/<id>``, ``status stopped, dosage ...``) from the text.

    The canonical text is ``MedicationRequest/<id>``, ``status=<s>``, then
    ``dosage=`` and the rest of the text: a dosage may hold line breaks, and all
    of it is shown (a line of it is never taken for a field of its own, nor left
    out). Any other shape is refused.
    """
    resource, _, rest = change.partition("\nstatus=")
    status, found, dosage = rest.partition("\ndosage=")
    if not found or not _RESOURCE.fullmatch(resource) or status not in _STATUSES:
        raise invalid_request("the change is not a medication change")
    shown = [f"status {status}"] if status else []
    shown += [f"dosage {dosage}"] if dosage else []
    if not shown:
        raise invalid_request("the change is not a medication change")
    return resource, ", ".join(shown)


def consent_change(body: bytes, details: list[dict[str, Any]]) -> str | None:
    """The change a verification request carries, checked against the challenge.

    A write's detail names ``change_sha256``: the request must carry a change
    whose SHA-256 is exactly that. A read carries none.
    """
    change = _change_of(body)
    expected = details[0].get("change_sha256") if details else None
    if expected is None:
        if change is not None:
            raise invalid_request("only a write's push carries a change")
        return None
    if change is None:
        raise invalid_request("a consent push must carry the change")
    digest = hashlib.sha256(change.encode("utf-8")).hexdigest()
    if digest != expected:
        raise invalid_request("the change does not match the approved change_sha256")
    return change


def _change_of(body: bytes) -> str | None:
    """``transactionData.additionalData[name=change].value``, if any."""
    if not body.strip():
        return None
    try:
        request = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise invalid_request("the verification request is not JSON") from exc
    data = request.get("transactionData") if isinstance(request, dict) else None
    extra = data.get("additionalData") if isinstance(data, dict) else None
    if extra is None:
        return None
    if not isinstance(extra, list):
        raise invalid_request("transactionData.additionalData must be a list")
    changes = [
        item.get("value")
        for item in extra
        if isinstance(item, dict) and item.get("name") == "change"
    ]
    if not changes:
        return None
    change = changes[0]
    if len(changes) > 1 or not isinstance(change, str):
        raise invalid_request("exactly one change, as a string, is allowed")
    if not change or len(change) > MAX_CHANGE_CHARS:
        raise invalid_request("the change is empty or too long")
    if any(_hidden(char) for char in change):
        # The push must show exactly what is written: no bidi overrides, no
        # zero-width or control characters (tab and newline aside).
        raise invalid_request("the change holds invisible characters")
    return change


def _hidden(char: str) -> bool:
    return char not in "\t\n" and unicodedata.category(char) in _HIDDEN_CATEGORIES
