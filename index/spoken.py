"""How much of a spoken sentence an answer shows (pure: sentences in).

A transcript sentence longer than 40 words or 30 seconds is cut at cue
boundaries into pieces (``ingest/transcript.py``), so that every piece starts
at a cue and its time is exact.  Whisper writes run-on sentences, so about one
spoken sentence in fifteen is cut (3,346 of 50,101 in 40 of the shared
transcripts, 94% of them in two pieces; median 50 words).  An answer that
shows one piece alone shows a fragment: "… the need for viewing the maximum
amount" without what is viewed, or "of sunlight that one can reasonably get"
without its start.

So an answer shows the piece the ranking chose and the pieces of its passage
that finish the spoken sentence (at most ``most`` more): the text still starts
at the chosen piece, so its time stays the exact one that piece has, and the
one the result card shows for it.  Where the piece begins or ends inside a
spoken sentence whose other part is not shown, the answer says so
(``begins_mid``, ``ends_mid``), and the page and the terminal mark it with an
ellipsis; the text itself stays the source's words.  Wiki sentences are never
cut this way: a wiki answer is its sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.records import Sentence

# A spoken sentence ends with . ! ? or an ellipsis, maybe inside quotes or brackets.
_CLOSING = r"[\"'’”)\]]*$"
_END = re.compile(r"[.!?…]" + _CLOSING)
_ASKS = re.compile(r"\?" + _CLOSING)
# A tag closes a statement ("… 1.5 times, okay?"): it states, it does not ask.
_TAG = re.compile(
    r",\s*(?:right|okay|ok|yeah|yes|no|correct|true|huh|eh|agreed|you know|you see"
    r"|isn't it|aren't they|don't you think|wouldn't you say)\?" + _CLOSING,
    re.IGNORECASE,
)


def finished(text: str) -> bool:
    """Whether ``text`` ends a sentence (Whisper punctuates every one it ends)."""
    return bool(_END.search(text.rstrip()))


def spoken_end(sentences: Sequence[Sentence], j: int, most: int = 2) -> int:
    """The last piece to show with ``sentences[j]``: the one that finishes its
    spoken sentence, within the passage and at most ``most`` pieces on."""
    k = j
    while k < len(sentences) - 1 and k - j < most and not finished(sentences[k].text):
        k += 1
    return k


def begins_mid(sentences: Sequence[Sentence], j: int) -> bool:
    """Whether ``sentences[j]`` continues a spoken sentence begun before it: the
    piece before it is unfinished, or (the passage's first) it starts in lower case."""
    if j > 0:
        return not finished(sentences[j - 1].text)
    first = sentences[j].text.lstrip()[:1]
    return first.isalpha() and first.islower()


def asks(sentences: Sequence[Sentence], j: int) -> bool:
    """Whether ``sentences[j]`` is (part of) a sentence that asks: it, or the
    piece that finishes its spoken sentence, ends with a question mark, and
    not after a tag ("…1.5 times, okay?", "…capillaries, right?"): a statement
    with a tag still states."""
    end = sentences[spoken_end(sentences, j)].text.rstrip()
    return bool(_ASKS.search(end)) and not _TAG.search(end)
