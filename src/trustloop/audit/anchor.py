"""The anchor beside each audit file: how many lines it had and the last one's hash.

The hash chain cannot see lines cut off the end of a file; the anchor can. It is
written in place after every append, cheaply (one ``pwrite`` on a descriptor kept
open, no rename), into one of two fixed-size slots in turn. Each slot carries a
check over its own content, so a write torn by a crash spoils only the slot being
written and the reader takes the valid slot with the larger count (a count one
short is fine: lines after the anchor are accepted when they chain).

Slot format: one JSON object padded with spaces to :data:`SLOT_BYTES` - 1 bytes,
then ``\\n``: ``{"lines": <count>, "last_hash": <hex>, "check": <hex>}`` where
``check`` is the first 16 hex digits of SHA-256 over ``"<count>:<last_hash>"``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

ANCHOR_SUFFIX = ".anchor"
SLOT_BYTES = 160


class AnchorError(OSError):
    """The anchor could not be written."""


@dataclass(frozen=True)
class Anchor:
    lines: int
    last_hash: str


def anchor_path(path: Path) -> Path:
    return path.with_name(path.name + ANCHOR_SUFFIX)


class AnchorWriter:
    """Writes one file's anchor; the caller serialises calls (the log's lock)."""

    def __init__(self, path: Path) -> None:
        self.path = anchor_path(path)
        self._fd: int | None = None

    def write(self, anchor: Anchor) -> None:
        slot = _slot(anchor)
        try:
            if self._fd is None:
                flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
                self._fd = os.open(self.path, flags, 0o600)
            os.pwrite(self._fd, slot, (anchor.lines % 2) * SLOT_BYTES)
        except OSError as exc:
            raise AnchorError(f"cannot write the audit anchor {self.path}") from exc


def read_anchor(path: Path) -> Anchor | None:
    """The anchor of audit file ``path``; None when there is no anchor file.

    An anchor file with no valid slot reads as "more lines than any file has",
    so verification reports the file as cut off rather than passing it.
    """
    try:
        raw = anchor_path(path).read_bytes()
    except FileNotFoundError:
        return None
    slots = [raw[i : i + SLOT_BYTES] for i in range(0, 2 * SLOT_BYTES, SLOT_BYTES)]
    valid = [a for a in map(_parse, slots) if a is not None]
    if not valid:
        return Anchor(lines=2**62, last_hash="")
    return max(valid, key=lambda a: a.lines)


def _check(lines: int, last_hash: str) -> str:
    return hashlib.sha256(f"{lines}:{last_hash}".encode()).hexdigest()[:16]


def _slot(anchor: Anchor) -> bytes:
    body = json.dumps(
        {
            "lines": anchor.lines,
            "last_hash": anchor.last_hash,
            "check": _check(anchor.lines, anchor.last_hash),
        },
        separators=(",", ":"),
    ).encode()
    return body.ljust(SLOT_BYTES - 1) + b"\n"


def _parse(slot: bytes) -> Anchor | None:
    try:
        data = json.loads(slot)
        lines, last_hash, check = data["lines"], data["last_hash"], data["check"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(lines, int) or not isinstance(last_hash, str) or lines < 0:
        return None
    if check != _check(lines, last_hash):
        return None
    return Anchor(lines=lines, last_hash=last_hash)
