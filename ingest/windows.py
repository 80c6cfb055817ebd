"""Transcript passages: overlapping time windows of whole sentences.

A window is cut only at sentence ends, so every passage starts on a sentence
with an exact cue time (its anchor) and regrouping never moves a citation.

Two kinds of window are cut from one transcript:

- ``transcript_passages``: what is searched and shown, ~60 s every 30 s by
  default (docs/benchmarks.md, "Transcript windows");
- ``model_windows``: what the model reads, back to back without overlap and
  short enough for its 256 word pieces.  Every sentence lies in exactly one
  of them, so one forward pass per model window gives every sentence a vector,
  and the index pools a searched window's vector from its sentences' vectors
  (index/vectors.py): overlap and length then cost no extra embedding.
"""

from __future__ import annotations

from ingest.records import Document, Passage, Sentence, passage_id

# all-MiniLM-L6-v2 reads 256 word pieces and silently drops the rest.  Counted
# in characters, the steadiest proxy for word pieces on the shared transcripts
# (pieces per character vary ~1.3x between windows, per word ~1.4x).  Measured
# with the model's tokenizer there: a 200-word cap overflows 256 pieces in 14%
# of windows, 900 characters in 1 of 9,000, 850 in none.  The title counts too:
# the model reads it (see Passage.embed_text).  60 s of speech is ~1,100
# characters, so on those files windows end up ~48 s long.
MAX_WINDOW_CHARS = 880
MODEL_WINDOW_S = 60.0
# Transcript windows searched and shown: chosen by measurement (bench/windows.py,
# docs/benchmarks.md, "Transcript windows").
WINDOW_S = 60.0
STRIDE_S = 30.0


def model_windows(doc: Document) -> list[Passage]:
    """Back-to-back windows the model can read whole (see the module docstring).

    They run across chapters and carry no trail, so a transcript's sentence
    vectors depend on its file alone (index/vectors.py keys them by its hash),
    never on a chapters file beside it."""
    return transcript_passages(
        doc, MODEL_WINDOW_S, MODEL_WINDOW_S, MAX_WINDOW_CHARS, by_section=False
    )


def transcript_passages(
    doc: Document,
    window_s: float = WINDOW_S,
    stride_s: float = STRIDE_S,
    max_chars: int | None = None,
    by_section: bool = True,
) -> list[Passage]:
    """Windows of about ``window_s`` seconds starting every ``stride_s`` seconds,
    cut inside each section (a podcast's chapters, ingest/podcast.py) so every
    window carries the trail of the chapter it lies in, as wiki passages do.

    A window starts at a sentence and takes the following sentences until its
    span reaches ``window_s`` (or ``max_chars``, title included, when given);
    the next window starts at the first sentence beginning ``stride_s`` or more
    after this one's start, and never after the sentence following this window,
    so nothing is skipped.
    ``stride_s == window_s`` gives windows that neither overlap nor leave gaps.
    """
    if doc.kind != "transcript":
        raise ValueError(f"{doc.path}: transcript windows need a transcript, not {doc.kind}")
    if not 0 < stride_s <= window_s:
        raise ValueError(f"need 0 < stride_s <= window_s, got {stride_s} and {window_s}")
    budget = max_chars - len(doc.title) - 2 if max_chars is not None else None
    groups = (
        [(sec.trail, sec.sentences) for sec in doc.sections]
        if by_section
        else [((), tuple(doc.sentences))]
    )
    passages: list[Passage] = []
    for trail, sentences in groups:
        timed = [s for s in sentences if s.time is not None and s.end_time is not None]
        passages.extend(_windows(doc, trail, timed, window_s, stride_s, budget))
    return passages


def _windows(
    doc: Document,
    trail: tuple[str, ...],
    timed: list[Sentence],
    window_s: float,
    stride_s: float,
    budget: int | None,
) -> list[Passage]:
    size = [len(s.text) + 1 for s in timed]
    starts = [_start(s) for s in timed]

    passages: list[Passage] = []
    i = 0
    while i < len(timed):
        t0 = starts[i]
        j, used = i + 1, size[i]
        # Take sentence j while the window is still short, j starts inside it
        # (so stride == window cannot repeat it) and it fits the character budget.
        while (
            j < len(timed)
            and _end(timed[j - 1]) - t0 < window_s
            and starts[j] - t0 < window_s
            and (budget is None or used + size[j] <= budget)
        ):
            used += size[j]
            j += 1
        passages.append(_passage(doc, trail, tuple(timed[i:j])))
        if j == len(timed):
            break  # later windows would only repeat the tail of this one
        nxt = i + 1
        while nxt < j and starts[nxt] - t0 < stride_s:
            nxt += 1
        i = nxt
    return passages


def _start(s: Sentence) -> float:
    assert s.time is not None
    return s.time.seconds


def _end(s: Sentence) -> float:
    assert s.end_time is not None
    return s.end_time


def _passage(doc: Document, trail: tuple[str, ...], sentences: tuple[Sentence, ...]) -> Passage:
    start, end = sentences[0].start, sentences[-1].end
    return Passage(
        id=passage_id(doc.id, start, end),
        document_id=doc.id,
        document_title=doc.title,
        kind="transcript",
        channel=doc.channel,
        episode=doc.episode,
        section=trail,
        sentences=sentences,
        anchor=sentences[0].time,
        links=(),
        path=doc.path,
        transcribed=doc.transcribed,
    )
