"""Other spellings of a word the library never says (index/spelling.py): the
pure rule, then the real seed index (its text says "anesthetic" and
"summarized", never "anaesthetic" or "summarised")."""

from __future__ import annotations

from typing import Any

from index.coverage import unknown_terms
from index.rank import ranking
from index.spelling import american, other_spellings, said_somehow, unaccented, with_spellings


def test_american_spellings_of_british_words() -> None:
    assert american("Practising") == "practicing"
    assert american("oestrogen") == "estrogen"
    assert american("summarised") == "summarized"
    # Words without another spelling, and American ones, have none.
    assert american("exercise") is None
    assert american("promise") is None
    assert american("practicing") is None


def test_only_words_the_library_never_says_gain_their_american_spelling() -> None:
    never = {"practising", "colour"}

    def said(word: str) -> bool:
        return word not in never

    expanded = with_spellings("Practising colour, colour", said)
    assert expanded == "Practising colour, colour practicing color"
    # A British spelling the library says keeps its own match alone ...
    assert with_spellings("the colour of light", lambda w: True) == "the colour of light"
    # ... and a question without other spellings is itself.
    assert with_spellings("How does caffeine work?", said) == "How does caffeine work?"


def test_a_name_the_library_never_says_is_also_read_without_accents() -> None:
    assert unaccented("bohórquez") == "bohorquez"
    assert unaccented("bohorquez") is None
    assert other_spellings("naïve") == ["naive"]
    assert other_spellings("caffeine") == []
    read = with_spellings("Diego Bohórquez", lambda w: w != "bohórquez")
    assert read == "Diego Bohórquez bohorquez"


def test_a_word_said_another_way_counts_as_said() -> None:
    library = {"practicing", "bohorquez"}
    said = said_somehow(library.__contains__)
    assert said("practising") and said("Bohórquez".lower()) and said("practicing")
    assert not said("epley") and not said("colour")


def test_a_british_spelling_is_not_a_name_the_library_never_says(seed_index: Any) -> None:
    backend = seed_index.backend
    assert backend.keyword_ceiling("anaesthetic") == 0.0 < backend.keyword_ceiling("anesthetic")
    question = "Why is ketamine used as an anaesthetic, and who summarised the trials?"
    assert unknown_terms(seed_index, question) == []
    # A word with no American spelling that the library never says still counts.
    assert unknown_terms(seed_index, "Does the Epley maneuver help?") == ["epley"]


def test_keyword_search_finds_the_american_spelling(seed_index: Any) -> None:
    vector = seed_index.embed("anesthetic")

    def rows(query: str) -> list[int]:
        return [r.row for r in ranking(seed_index, query, vector, 5, mode="bm25").ranked]

    assert rows("anaesthetic") == rows("anesthetic") != []
