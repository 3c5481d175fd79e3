"""One audit line as a record: a JSON object, or the reason it is not one.

Audit files may have been written by anyone who can write to them, so a line is
read defensively: a line that is not JSON, is JSON but not an object, or nests
deeper than any system writes (which would crash the parser or a walk over it)
is reported by ``verify`` and skipped by ``trace`` and ``tail``.
"""

from __future__ import annotations

import json
from typing import Any

from trustloop.json_depth import nested_deeper_than

MAX_DEPTH = 32
"""Deeper than any record the systems write (Vault's nest about 5 levels)."""


class BadLineError(ValueError):
    """A line that is not an audit record; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_line(raw: bytes | str) -> dict[str, Any]:
    """The record on ``raw``; :class:`BadLineError` when it is not one."""
    try:
        record = json.loads(raw)
    except RecursionError:
        raise BadLineError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        raise BadLineError("not JSON") from None
    if not isinstance(record, dict):
        raise BadLineError("not a JSON object")
    if nested_deeper_than(record, MAX_DEPTH):
        raise BadLineError(f"nested deeper than {MAX_DEPTH} levels")
    return record


def record_or_none(raw: bytes | str) -> dict[str, Any] | None:
    """The record on ``raw``, or None for a line that is not one."""
    try:
        return parse_line(raw)
    except BadLineError:
        return None
