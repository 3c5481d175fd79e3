"""find_patient's name matching: case and accents ignored, words as prefixes."""

from __future__ import annotations

import pytest

from trustloop.tools.roster import name_matches


@pytest.mark.parametrize(
    "query",
    ["Mejia", "mejía", "MEJIA", "gus", "Gus Mej", "mej gus", "Gustavo Mejía"],
)
def test_these_queries_find_gustavo_mejia(query: str) -> None:
    assert name_matches(query, "Gustavo Mejía")


@pytest.mark.parametrize("query", ["ejia", "Mejias", "Gus Carter", "avo", "-", "."])
def test_these_queries_do_not(query: str) -> None:
    assert not name_matches(query, "Gustavo Mejía")


def test_accents_in_the_query_are_ignored_as_well() -> None:
    assert name_matches("Jésus Álvarez", "Jesús Alvarez")


def test_hyphens_and_apostrophes_separate_words() -> None:
    assert name_matches("smith", "Anna Jones-Smith")
    assert name_matches("brien", "Conan O'Brien")
