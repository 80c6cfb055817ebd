"""Sentence boundaries with character offsets.

A small rule-based splitter rather than a trained one: our sources are clean
prose (wiki pages) or Whisper output with punctuation, the spans must map back
to the source exactly, and a citation that trails a sentence must stay with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Abbreviations after which a period does not end a sentence.
_ABBREVIATIONS = frozenset(
    [
        "al",
        "e.g",
        "i.e",
        "etc",
        "vs",
        "cf",
        "dr",
        "mr",
        "mrs",
        "ms",
        "prof",
        "st",
        "jr",
        "sr",
        "no",
        "fig",
        "approx",
        "ca",
        "inc",
        "ltd",
        "co",
        "mt",
        "ft",
        "u.s",
        "u.k",
        "ph.d",
        "m.d",
        "b.s",
        "dept",
        "est",
        "min",
        "max",
    ]
)

# A sentence ends at . ! ? (plus closing quotes/brackets) followed by space and
# the start of a new sentence.  ``trailer`` lets a caller keep markup that
# follows the punctuation (a citation written after the period) with the
# sentence before it.
_END = r"[.!?]+[\"'”’)\]]*"
_NEXT = r"(?=[\"'“‘(\[]?[A-Z0-9<*])"


def _boundary_re(trailer: str | None) -> re.Pattern[str]:
    tail = rf"(?:[ \t]*(?:{trailer}))*" if trailer else ""
    return re.compile(rf"{_END}{tail}(?P<gap>\s+){_NEXT}")


_PLAIN = _boundary_re(None)

# Text with no sentence ends (a 1 MB line, a VTT cue of one run-on stream) would
# otherwise be one "sentence" of which the model reads only the first 256 word
# pieces.  A span longer than MAX_SENTENCE_CHARS is cut at spaces into pieces
# of at most MAX_PIECE_CHARS (~100 words: read whole, title and all, inside the
# 880-character model window of ingest/windows.py), each with its own offsets.
MAX_SENTENCE_CHARS = 1200
MAX_PIECE_CHARS = 600


def _ends_with_abbreviation(text: str, dot: int) -> bool:
    """True when the period at ``dot`` closes an abbreviation like "et al." or "Dr."."""
    if dot >= len(text) or text[dot] != ".":
        return False
    start = dot
    while start > 0 and (text[start - 1].isalpha() or text[start - 1] == "."):
        start -= 1
    word = text[start:dot].lower()
    if word in _ABBREVIATIONS:
        return True
    # Single capital initials ("J. Smith") are not sentence ends either.
    return len(word) == 1 and text[start].isupper()


def split(
    text: str, offset: int = 0, trailer: str | None = None, long: bool = True
) -> Iterator[tuple[int, int]]:
    """Yield ``(start, end)`` of each sentence of ``text``, shifted by ``offset``.

    Spans are stripped of surrounding whitespace; the text between spans is
    whitespace only, so the spans tile the text.  ``long=False`` leaves
    over-long spans whole (transcripts cut them at cues first, then ``cut``).
    """
    pattern = _boundary_re(trailer) if trailer else _PLAIN
    start = 0
    for m in pattern.finditer(text):
        if _ends_with_abbreviation(text, m.start()):
            continue
        end = m.start("gap")
        if text[start:end].strip():
            yield from cut(text, *_strip(text, start, end, 0), offset, long)
        start = m.end("gap")
    if text[start:].strip():
        yield from cut(text, *_strip(text, start, len(text), 0), offset, long)


def cut(text: str, a: int, b: int, offset: int = 0, long: bool = True) -> Iterator[tuple[int, int]]:
    """``text[a:b]`` as is, or cut at spaces into balanced pieces when too long
    (a piece with no space in reach is cut mid-word)."""
    if b - a <= MAX_SENTENCE_CHARS or not long:
        yield a + offset, b + offset
        return
    parts = -(-(b - a) // MAX_PIECE_CHARS)
    size = -(-(b - a) // parts)
    while a < b:
        end = min(b, a + size)
        if end < b:
            space = text.rfind(" ", a + size // 2, end + 1)
            end = space if space > a else end
        lo, hi = _strip(text, a, end, 0)
        if hi > lo:
            yield lo + offset, hi + offset
        a = end


def _strip(text: str, start: int, end: int, offset: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start + offset, end + offset
