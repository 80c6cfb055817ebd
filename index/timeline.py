"""Where a topic comes up: per episode among the results, every moment that scores.

For a question, ``strips`` takes the top few episodes of its results and, for
each, scores every passage of that episode, keeping those at or above the
weak threshold as marks at their best sentence's moment.  The episode's rows
come from its documents (``document_rows``) and are scored with ``cosines``:
the same numbers as ``dense`` with ``Filters(episode=...)``, without building
a filter mask over every passage of the library for each new episode.  The decisions
(``episodes_of``, ``marks``, ``chapters``, ``extent``) are pure functions of
records, tested on hand-made ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from index.records import Filters, Hit
from index.search import hit_at

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from index.answer_type import Quantity
    from index.backend import Index
    from ingest.records import Episode, Passage

MOST_EPISODES = 3


@dataclass(frozen=True, slots=True)
class Mark:
    seconds: float
    score: float  # the dense cosine, as every result's score
    exact: bool  # the moment is the sentence's own time (else a wiki anchor, approximate)


@dataclass(frozen=True, slots=True)
class Chapter:
    title: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Strip:
    episode: Episode
    duration: float  # the strip's length in seconds
    duration_known: bool  # False: the build knows no length; the last mark stands in
    marks: list[Mark]
    chapters: list[Chapter]


def episodes_of(hits: Iterable[Hit], most: int = MOST_EPISODES) -> list[Episode]:
    """The distinct episodes of ``hits``, in the order of their best result."""
    seen: dict[str, Episode] = {}
    for h in hits:
        ep = h.passage.episode
        if ep is not None and ep.id not in seen:
            seen[ep.id] = ep
            if len(seen) == most:
                break
    return list(seen.values())


def marks(scored: Iterable[Hit], threshold: float) -> list[Mark]:
    """One mark per moment of the passages scoring at least ``threshold``, by time;
    where overlapping windows cite the same second, the higher score stays."""
    best: dict[int, Mark] = {}
    for h in scored:
        t = h.time
        if h.score < threshold or t is None:
            continue
        key = int(t.seconds)
        if key not in best or best[key].score < h.score:
            best[key] = Mark(float(key), h.score, t.exact)
    return [best[s] for s in sorted(best)]


def chapters(passages: Sequence[Passage]) -> list[Chapter]:
    """Chapter titles of a transcript (its passages' section trails, filled from
    podcast or YouTube chapters where the source has them), each at the first
    moment it covers."""
    found: list[Chapter] = []
    ordered = sorted(
        (p for p in passages if p.kind == "transcript" and p.section and p.span),
        key=lambda p: p.start,
    )
    for p in ordered:
        title = p.section[-1]
        span = p.span
        if span is not None and (not found or found[-1].title != title):
            found.append(Chapter(title, span[0]))
    return found


def extent(duration: float | None, found: Sequence[Mark]) -> tuple[float, bool]:
    """The strip's length: the episode's duration, else the last mark (not known)."""
    if duration is not None and duration > 0:
        return duration, True
    last = max((m.seconds for m in found), default=0.0)
    return max(last * 1.05, 60.0), False


def within(found: Sequence[Mark], length: float, known: bool) -> list[Mark]:
    """The marks a strip can place: none past a known end (a wiki citation of a
    moment the transcript does not reach would otherwise sit at the end)."""
    return [m for m in found if not known or m.seconds <= length]


def strips(
    index: Index,
    q: NDArray[np.float32],
    hits: Sequence[Hit],
    threshold: float,
    durations: Mapping[str, float | None],
    kind: str | None = None,
    most: int = MOST_EPISODES,
    wants: Quantity | None = None,
) -> list[Strip]:
    """The timeline of a question: one strip per top episode of ``hits``
    (``wants``: the quantity it asks for, so a mark sits where its card's would)."""
    out = []
    backend = index.backend
    for ep in episodes_of(hits, most):
        docs = [d for d, meta in index.documents.items() if meta.get("episode") == ep.id]
        rows = [r for d in docs for r in backend.document_rows(d)]
        passages = [backend.passage(r) for r in rows]
        admitted = Filters(kind=kind, episode=ep.id)
        rows = [r for r, p in zip(rows, passages, strict=True) if admitted.admits(p)]
        scores = backend.cosines(q, rows).tolist() if rows else []
        passing = [
            hit_at(index, row, score, q, wants)
            for row, score in zip(rows, scores, strict=True)
            if score >= threshold
        ]
        found = marks(passing, threshold)
        length, known = extent(durations.get(ep.id), found)
        titles = chapters(passages)
        out.append(Strip(ep, length, known, within(found, length, known), titles))
    return out
