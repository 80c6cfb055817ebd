"""Whether a question names something the library never says: abstention's
second signal (``index.search.abstains``).

A cosine threshold cannot tell a health question the library covers from one
it does not: "Does the Epley maneuver cure vertigo?" lands on the vestibular
passages with a cosine as high as a covered question's.  What gives it away is
a word no passage of the library contains ("epley"), read off the keyword
index's document frequency (a word in no passage has no BM25 score anywhere).

Only uncommon words count: a word that is a whole entry of the packaged
model's WordPiece vocabulary (30,522 entries, the common English words) is
not a name or a term of art, and a small library (the 8-passage seed) lacks
many common words ("cause", "help") without lacking the topic.  No word list
is packaged for this, so the model's own vocabulary stands in for one; it is
a property of English, not of the model, so a tuned model shares it.
Measured in docs/benchmarks.md, "Abstention".

The third signal goes the other way: a question that names people or
products ("Emily Balcetis", "Rhonda Patrick", "Neuralink") whose first
result holds every one of those names is about something the library says,
though the page's passage may say more than the one detail asked and its
cosine sit under the threshold (``names_met``; "A proper name the first
result holds").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache

from index.backend import Index, SearchBackend
from index.keyword import STOPWORDS, normalise_tokens, passage_tokens, words
from index.records import Hit
from index.spelling import said_somehow


@cache
def common_words() -> frozenset[str]:
    """Whole words of the packaged model's vocabulary (empty if it cannot be read)."""
    from index.embedder import default_model_dir

    try:
        lines = (default_model_dir() / "vocab.txt").read_text(encoding="utf-8").split()
    except (OSError, ValueError):
        return frozenset()
    return frozenset(w for w in lines if w.isalpha())


def name_words(query: str, common: frozenset[str]) -> list[str]:
    """The question's words that could name something: not stopwords, not
    short, not common English, and giving a keyword token (pure)."""
    out = (w for w in words(query) if len(w) > 2 and w not in STOPWORDS and w not in common)
    return [w for w in dict.fromkeys(out) if normalise_tokens(w)]


def unknown(words_: Iterable[str], in_library: Callable[[str], bool]) -> list[str]:
    """Those of ``words_`` the library never says (pure, given ``in_library``)."""
    return [w for w in words_ if not in_library(w)]


def said_in(backend: SearchBackend) -> Callable[[str], bool]:
    """Whether a word is in any passage of ``backend``'s library: a word in no
    passage has no BM25 score anywhere, so its ceiling is 0, at no cost (a
    known word's is computed once and kept by the keyword index).  The
    coverage check and the keyword query's other spellings (index/rank.py)
    both ask it."""
    return lambda word: backend.keyword_ceiling(word) > 0.0


def unknown_terms(index: Index, query: str, common: frozenset[str] | None = None) -> list[str]:
    """The question's uncommon words that no passage of the library contains,
    in any of their spellings (index/spelling.py; none when the index has no
    keyword index to tell)."""
    backend = index.backend
    if not backend.has_keyword:
        return []
    found = name_words(query, common_words() if common is None else common)
    return unknown(found, said_somehow(said_in(backend)))


_WORD = re.compile(r"[A-Za-z][\w'-]*")


def proper_names(query: str, common: frozenset[str]) -> list[str]:
    """The question's uncommon words (``name_words``) written with a capital,
    not as its first word: the names of people and products ("Balcetis",
    "Housel", "Neuralink's") (pure)."""
    uncommon = set(name_words(query, common))
    out: list[str] = []
    for m in _WORD.finditer(query):
        if m.start() > 0 and m.group()[0].isupper():
            out += [w for w in words(m.group()) if w in uncommon]
    return list(dict.fromkeys(out))


def holds(names: Sequence[str], tokens: set[str]) -> bool:
    """Whether a passage's keyword ``tokens`` hold every one of ``names`` (pure)."""
    return bool(names) and all(set(normalise_tokens(w)) <= tokens for w in names)


def names_met(query: str, hits: Sequence[Hit], common: frozenset[str] | None = None) -> bool:
    """Whether the question names people or products and its first result
    holds every one of those names."""
    names = proper_names(query, common_words() if common is None else common)
    # Most questions name no one: the first result is then not tokenised at all
    # (0.43 ms a query on the shared library's passages).
    return bool(names and hits) and holds(names, set(passage_tokens(hits[0].passage)))
