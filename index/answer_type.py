"""What kind of answer a question asks for: a quantity, or anything.

A question asking "how much", "how long" or "what dose" is answered by a
sentence that states a number; the sentence cosine alone cannot see that (the
question "How much dietary fiber do the Hadza eat ...?" is as close to "The
Hadza diet consists mainly of wild tubers ..." as to "... consume on the order
of 100 to 150 grams of dietary fiber per day").  ``index.search.choose_answer``
gives such sentences a small bonus (``AnswerRule.number_bonus``).

Two regular expressions, written here rather than taken from a library: an
English question classifier (a trained model, or spaCy's parser) would be a
second model to ship and load for what a fixed list of question openings says,
and the numbers a sentence can state are the spoken and written ones the
keyword index already reads (``index.keyword``'s number words).  Measured in
docs/benchmarks.md, "Answer sentences".
"""

from __future__ import annotations

import re

from index.keyword import NUMBER_WORDS

_QUANTITY = re.compile(
    r"\b(how (many|much|long|often|far|old|fast|soon|big|large|high|low|quickly|frequently)"
    r"|what (percentage|percent|proportion|fraction|dose|dosage|amount|number|temperature|age|year)"
    r"|at what (age|time|dose|temperature)|in what year|which year)\b",
    re.IGNORECASE,
)
# Beyond the words the keyword index turns into digits: sizes and ratios said in words.
_MORE = ("million", "billion", "half", "double", "twice", "dozen")
_NUMBER = re.compile(r"\d|\b(" + "|".join([*NUMBER_WORDS, *_MORE]) + r")\b", re.IGNORECASE)


def asks_quantity(question: str) -> bool:
    """Whether ``question`` asks for an amount, a duration, a dose, an age or a year."""
    return _QUANTITY.search(question) is not None


def states_number(text: str) -> bool:
    """Whether ``text`` states a number, in digits or in words."""
    return _NUMBER.search(text) is not None
