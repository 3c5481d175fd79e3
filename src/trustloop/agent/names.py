"""Comparing people's and medicines' names the way a clinician types them."""

from __future__ import annotations

import re
import unicodedata


def name_tokens(name: object) -> list[str]:
    """Words of a name, case-folded, accents and punctuation removed."""
    if not isinstance(name, str):
        return []
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return re.sub(r"[^\w\s]|_", " ", plain).split()
