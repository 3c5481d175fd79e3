"""How deep a parsed JSON document nests, measured without recursion.

Python's JSON parser, and any recursive walk over what it returns, fail with
``RecursionError`` near 1,000 levels. Readers of files anyone may have written (a
FHIR bundle, an audit line) refuse a document deeper than they expect first.
"""

from __future__ import annotations

from typing import Any


def nested_deeper_than(doc: Any, limit: int) -> bool:
    """Whether ``doc`` nests objects and arrays more than ``limit`` levels deep."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
    return False
