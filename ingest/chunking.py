"""Documents -> passages: groups of whole sentences chosen for retrieval.

A passage never crosses a heading and never cuts a sentence, so every passage
is contiguous verbatim text of one section and every citation stays with its
sentence.  The rule (paragraphs, split when long) was chosen by measurement
against single sentences, sentence windows and a fixed 500-character chunker:
see docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Literal

from ingest.records import Document, Passage, Section, Sentence, Time, passage_id
from ingest.windows import STRIDE_S, WINDOW_S, transcript_passages

# all-MiniLM-L6-v2 reads 256 word pieces and silently drops the rest; English
# prose runs about 1.3 pieces a word, and the embedded text adds the title and
# heading trail, so 150 words keeps every passage whole inside the window.
MAX_WORDS = 150

Rule = Literal["paragraph", "sentence", "window3"]


def _words(s: Sentence) -> int:
    return len(s.text.split())


def _pack(sentences: Sequence[Sentence], max_words: int) -> list[list[Sentence]]:
    """Consecutive sentences into groups of at most ``max_words`` (a longer
    single sentence stands alone), balanced so no tiny tail group is left.
    A lead-in never ends a group that more sentences follow: it goes with
    what it introduces."""
    total = sum(_words(s) for s in sentences)
    if total <= max_words:
        return [list(sentences)] if sentences else []
    parts = -(-total // max_words)
    target = total / parts
    groups: list[list[Sentence]] = [[]]
    count = 0
    for s in sentences:
        w = _words(s)
        if groups[-1] and (count + w > max_words or count >= target):
            last = groups[-1]
            moved = [last.pop()] if len(last) > 1 and last[-1].leads_in else []
            groups.append(moved)
            count = sum(_words(m) for m in moved)
        groups[-1].append(s)
        count += w
    return groups


def _paragraphs(section: Section) -> list[tuple[int, int]]:
    """The section's paragraphs as (first, end) sentence indexes, a paragraph
    that ends with a lead-in joined to the next one: the wiki's pages open
    with "Here is the article:" and put a list's "... in three ways:" in a
    paragraph of its own, and alone such a passage was a result that says
    nothing (708 of the library's 12,904 wiki passages; docs/benchmarks.md,
    "Passage rule")."""
    sents = section.sentences
    bounds = [*section.paragraphs, len(sents)]
    out: list[tuple[int, int]] = []
    for a, b in pairwise(bounds):
        if a == b:
            continue
        if out and sents[out[-1][1] - 1].leads_in:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _groups(section: Section, rule: Rule, max_words: int) -> list[list[Sentence]]:
    sents = section.sentences
    if rule == "sentence":
        return [[s] for s in sents]
    if rule == "window3":
        if len(sents) <= 3:
            return [list(sents)]
        return [list(sents[i : i + 3]) for i in range(0, len(sents) - 2)]
    out: list[list[Sentence]] = []
    for a, b in _paragraphs(section):
        out.extend(_pack(sents[a:b], max_words))
    return [g for g in out if g]


def _nearest_time(section: Section, group: Sequence[Sentence]) -> Time | None:
    """The section's citation nearest to the group (in characters), approximate."""
    cited = [s for s in section.sentences if s.time is not None]
    if not cited:
        return None
    start, end = group[0].start, group[-1].end

    def distance(s: Sentence) -> int:
        return start - s.end if s.end <= start else max(0, s.start - end)

    best = min(cited, key=distance)
    assert best.time is not None
    return Time(best.time.seconds, exact=False)


def passages(
    doc: Document,
    rule: Rule = "paragraph",
    max_words: int = MAX_WORDS,
    window_s: float = WINDOW_S,
    stride_s: float = STRIDE_S,
) -> list[Passage]:
    if doc.kind == "transcript":
        return transcript_passages(doc, window_s, stride_s)
    out: list[Passage] = []
    for section in doc.sections:
        for group in _groups(section, rule, max_words):
            own = next((s.time for s in group if s.time is not None), None)
            anchor = own if own is not None else _nearest_time(section, group)
            links = tuple(dict.fromkeys(link for s in group for link in s.links))
            out.append(
                Passage(
                    id=passage_id(doc.id, group[0].start, group[-1].end),
                    document_id=doc.id,
                    document_title=doc.title,
                    kind=doc.kind,
                    channel=doc.channel,
                    episode=doc.episode,
                    section=section.trail,
                    sentences=tuple(group),
                    anchor=anchor,
                    links=links,
                    path=doc.path,
                )
            )
    return out
