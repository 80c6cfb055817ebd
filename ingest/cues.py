"""Whisper's words -> WebVTT cues that start where sentences start.

Cues are made from the words, one sentence at a time: a cue never holds the
end of one sentence and the start of the next, so the transcript parser
(ingest/transcript.py), which gives a sentence the start of the cue it begins
in, gives it the moment its first word is said.  A long sentence is cut into
cues of at most ``MAX_CUE_WORDS`` words or ``MAX_CUE_SECONDS``, so the
parser's cap on sentence length has cue boundaries to cut at.  Sentences are
found with the parser's own splitter (ingest/sentences.py), on the words
joined as the parser will join the cue texts, so it finds them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ingest import sentences as splitter
from ingest.clock import format_cue

MAX_CUE_WORDS = 12
MAX_CUE_SECONDS = 6.0
PAUSE_S = 1.0  # a pause this long inside a sentence starts a new cue there
SENTENCE_PAUSE_S = 0.6  # ... and at a segment's end, without punctuation, ends the sentence


@dataclass(frozen=True, slots=True)
class Word:
    start: float
    end: float
    text: str  # as Whisper gives it: a leading space starts a new word
    last_of_segment: bool = False


@dataclass(frozen=True, slots=True)
class Cue:
    start: float
    end: float
    text: str


def cues_from_words(words: Sequence[Word]) -> list[Cue]:
    """Cues that start at sentence starts (see the module docstring)."""
    kept = _whole_words(words)
    if not kept:
        return []
    # The words joined as the parser will join the cue texts, so its sentence
    # splitter finds exactly these sentences again.
    offsets: list[int] = []
    pos = 0
    for w in kept:
        offsets.append(pos)
        pos += len(w.text) + 1
    joined = " ".join(w.text for w in kept)
    cues: list[Cue] = []
    first = 0
    for _, end in splitter.split(joined):
        last = first
        while last + 1 < len(kept) and offsets[last + 1] < end:
            last += 1
        cues.extend(_sentence_cues(kept[first : last + 1]))
        first = last + 1
    if first < len(kept):
        cues.extend(_sentence_cues(kept[first:]))
    return _monotonic(cues)


def _whole_words(words: Sequence[Word]) -> list[Word]:
    """Whisper's words carry their leading space; one without ("60" ",000",
    "don" "'t") continues the word before, and a cue must not part them.

    Where the model wrote no sentence end but its segment ends, the speaker
    pauses and the next word begins with a capital, a period is added: tiny.en
    sometimes leaves short clips unpunctuated, and a "sentence" running on for
    30 s would be cited at its first word."""
    out: list[Word] = []
    for w in words:
        if not w.text.strip():
            continue
        text = " ".join(w.text.split())
        if out and not w.text[:1].isspace():
            prev = out[-1]
            out[-1] = Word(prev.start, max(prev.end, w.end), prev.text + text, w.last_of_segment)
            continue
        if out and _unended(out[-1], w):
            prev = out[-1]
            out[-1] = Word(prev.start, prev.end, prev.text + ".", prev.last_of_segment)
        out.append(Word(w.start, w.end, text, w.last_of_segment))
    return out


def _unended(prev: Word, nxt: Word) -> bool:
    return (
        prev.last_of_segment
        and nxt.start - prev.end >= SENTENCE_PAUSE_S
        and prev.text[-1:].isalnum()
        and nxt.text.strip()[:1].isupper()
    )


def _sentence_cues(words: Sequence[Word]) -> list[Cue]:
    out: list[Cue] = []
    run: list[Word] = []
    for w in words:
        if run and (
            len(run) >= MAX_CUE_WORDS
            or w.end - run[0].start > MAX_CUE_SECONDS
            or w.start - run[-1].end >= PAUSE_S
        ):
            out.append(_cue(run))
            run = []
        run.append(w)
    if run:
        out.append(_cue(run))
    return out


def _cue(words: Sequence[Word]) -> Cue:
    return Cue(words[0].start, words[-1].end, " ".join(w.text for w in words))


def _monotonic(cues: list[Cue]) -> list[Cue]:
    """Word times can overlap by a few milliseconds; the parser would drop or clamp."""
    out: list[Cue] = []
    prev_end = 0.0
    for c in cues:
        start = round(max(c.start, prev_end), 3)
        end = round(max(c.end, start), 3)
        out.append(Cue(start, end, c.text))
        prev_end = end
    return out


def vtt_text(cues: Sequence[Cue], note: str = "") -> str:
    """A WebVTT file: the NOTE (one paragraph), then one cue per block."""
    parts = ["WEBVTT", ""]
    if note:
        parts += ["NOTE", " ".join(note.replace("-->", "->").split()), ""]
    for c in cues:
        text = c.text.replace("&", "&amp;").replace("<", "&lt;").replace("-->", "->")
        parts += [f"{format_cue(c.start)} --> {format_cue(c.end)}", text, ""]
    return "\n".join(parts)
