"""Other spellings of a word the library never says: American for British, and
without accents.

A listener who writes "practising", "summarised" or "oestrogen" asks about what
an American-spelled library says as "practicing", "summarized" and "estrogen".
The dense model reads both alike, but BM25 matches stems, and the two
spellings stem apart ("practis" / "practic"); so a British word the library
never says found no passage by its keywords, and the coverage check
(index/coverage.py) took it for a name the library never mentions, which
made podcite abstain on 2 of 50 fresh in-scope questions that way
(docs/benchmarks.md, "Abstention").

Where a British word of the question is never said in the library, its
American spelling is read beside it: appended to the keyword query, and
counted as said by the coverage check.  Only then: a library that says the
British spelling (or both, as "gauge" and "dialogue") keeps its own match.
The table is breame's (Apache-2.0, about 1,700 British words and their
American spellings), a well-kept list rather than rules of our own ("-ise" to
"-ize" would turn "exercise" and "promise" wrong).

Accents likewise: a listener writes "Bohórquez", Whisper's transcript says
"Bohorquez" (and BM25's tokens keep accents, so the two never meet), so a word
the library never says is also read without its accents.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from functools import cache

from index.keyword import words


@cache
def _table() -> dict[str, str]:
    from breame.data.spelling_constants import BRITISH_ENGLISH_SPELLINGS

    return {b: a for b, a in BRITISH_ENGLISH_SPELLINGS.items() if a != b}


def american(word: str) -> str | None:
    """The American spelling of a British ``word`` (lowercase), or None where it
    has no other."""
    return _table().get(word.lower())


def unaccented(word: str) -> str | None:
    """``word`` without its accents ("bohórquez" -> "bohorquez"), or None where
    it has none."""
    decomposed = unicodedata.normalize("NFKD", word)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return plain if plain != word else None


def other_spellings(word: str) -> list[str]:
    """``word``'s American spelling and its form without accents, where it has them."""
    found = [american(word), unaccented(word)]
    return list(dict.fromkeys(w for w in found if w))


def said_somehow(said: Callable[[str], bool]) -> Callable[[str], bool]:
    """``said`` widened to a word's other spellings: whether the library says
    the word, or says it another way (pure, given ``said``)."""
    return lambda word: said(word) or any(said(o) for o in other_spellings(word))


def with_spellings(query: str, said: Callable[[str], bool]) -> str:
    """``query`` with the other spellings (``other_spellings``) of each of its
    words that the library never says (``said``: whether a word is in any
    passage) appended; ``query`` itself where there are none (pure, given
    ``said``)."""
    extra = [
        o for w in dict.fromkeys(words(query)) if (others := other_spellings(w)) and not said(w)
        for o in others
    ]  # fmt: skip
    return f"{query} {' '.join(extra)}" if extra else query
