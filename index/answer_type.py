"""What kind of answer a question asks for: a quantity, or anything.

A question asking "how much", "how long" or "what dose" is answered by a
sentence that states a number; the sentence cosine alone cannot see that (the
question "How much dietary fiber do the Hadza eat ...?" is as close to "The
Hadza diet consists mainly of wild tubers ..." as to "... consume on the order
of 100 to 150 grams of dietary fiber per day").  ``index.search.choose_answer``
gives such sentences a small bonus (``AnswerRule.number_bonus``).  Where the
question names the kind of quantity (a duration, a share, a dose, a
temperature, an age, a year, a frequency), only a number of that kind earns
it: "How long did the nap group sleep?" is answered by "napped for 90
minutes", not by "improved it by 20%".

Two regular expressions, written here rather than taken from a library: an
English question classifier (a trained model, or spaCy's parser) would be a
second model to ship and load for what a fixed list of question openings says,
and the numbers a sentence can state are the spoken and written ones the
keyword index already reads (``index.keyword``'s number words).  Measured in
docs/benchmarks.md, "Answer sentences".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from index.keyword import NUMBER_WORDS, normalise_tokens

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


def _kinds(pairs: list[tuple[str, str]]) -> list[tuple[re.Pattern[str], re.Pattern[str]]]:
    return [
        (re.compile(rf"\b({q})\b", re.IGNORECASE), re.compile(u, re.IGNORECASE)) for q, u in pairs
    ]


# The question's words that name a kind of quantity -> the words a sentence
# stating one uses.  Questions not named here ("how many", "how much", "how
# far") take any number.
_KINDS = _kinds(
    [
        (
            r"how (long|soon|quickly)",
            r"\b(seconds?|minutes?|mins?|hours?|hrs?|days?|nights?"
            r"|weeks?|months?|years?)\b",
        ),
        (r"what (percentage|percent|proportion|fraction)", r"%|\b(percent|half|third|quarter)\b"),
        (r"(at )?what temperature", r"\b(degrees?|fahrenheit|celsius)\b|°"),
        (
            r"(at )?what (dose|dosage|amount)",
            r"\b(mg|milligrams?|grams?|g|mcg|micrograms?|iu"
            r"|units?|ml|milliliters?|ounces?|oz|cups?|tablets?|capsules?|kg|kilograms?|pounds?)\b",
        ),
        (r"how old|(at )?what age", r"\b(years? old|age[ds]?|\d+s)\b"),
        (r"(in )?(what|which) year", r"\b(1[5-9]\d\d|20\d\d)\b"),
        (
            r"how (often|frequently)",
            r"\b(per|a day|a week|daily|weekly|nightly|times|every"
            r"|once|twice)\b",
        ),
    ]
)


# What stating the asked kind of number adds to a sentence's score, wherever a
# sentence is chosen for a question: the answer's sentences
# (``index.search.AnswerRule``) and a result's best sentence, the one its card
# highlights and a transcript window cites (``index.best.best_of``).
NUMBER_BONUS = 0.02


@dataclass(frozen=True, slots=True)
class Quantity:
    """The quantity a question asks for; ``unit``: the words a sentence stating
    it uses (None: any number will do)."""

    unit: re.Pattern[str] | None = None

    def stated_in(self, text: str) -> bool:
        """Whether ``text`` states a number of this kind."""
        return states_number(text) and (self.unit is None or self.unit.search(text) is not None)


def asked_quantity(question: str) -> Quantity | None:
    """The quantity ``question`` asks for, or None where it asks for none."""
    if not asks_quantity(question):
        return None
    unit = next((u for q, u in _KINDS if q.search(question)), None)
    return Quantity(unit)


# A reply that opens with yes or no answers in a word ("No, as you exhale."),
# however few words of its own it adds.
_YES_NO = re.compile(r"^\W*(yes|no|yeah|nope|correct|exactly|absolutely)\b", re.IGNORECASE)
# A question for a yes or no is answered by saying it again as a statement
# ("So I think Neanderthals had spoken language."): only the others are restated.
_WH = re.compile(r"\b(what|how|why|when|where|which|who|whom|whose)\b", re.IGNORECASE)


def asked_words(question: str) -> frozenset[str]:
    """The keyword tokens (``index.keyword.normalise_tokens``) a sentence must
    add to in order not to restate ``question``: none for a question for a yes
    or no, which its own words as a statement answer."""
    return frozenset(normalise_tokens(question)) if _WH.search(question) else frozenset()


def restates(asked: frozenset[str], text: str) -> bool:
    """Whether ``text`` adds at most one word, and no number, to the question's
    ``asked_words``: "Many of you are jet lagged." for "How do I get over jet
    lag?".  Such a sentence is the most like the question and tells nothing more."""
    if not asked or _YES_NO.match(text):
        return False
    own = set(normalise_tokens(text)) - asked
    return len(own) <= 1 and not any(c.isdigit() for t in own for c in t)
