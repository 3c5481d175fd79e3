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
from typing import Any

from trustloop.devstack.idp.errors import invalid_request

_MESSAGES = {
    "read": "Read the chart of {patient}?",
    "write_note": "Add a note to the chart of {patient}?",
    "update_medication": "Change a medication of {patient}?",
}
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
    """(``MedicationRequest/<id>``, ``status stopped, dosage ...``) from the text."""
    resource, _, rest = change.partition("\n")
    fields = (line.partition("=") for line in rest.split("\n"))
    shown = ", ".join(f"{name} {value}" for name, _, value in fields if value)
    return resource, shown


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
    return change
