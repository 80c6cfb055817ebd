"""The moment to cite for a wiki result, taken from the episode's transcript.

A wiki page is written from its episode, and its citations are often off by a
minute or many (docs/benchmarks.md, "Citation check").  When the episode's
transcript is in the same index, the listener is better served by the second
at which the transcript says the claim: the citation check's ``said_at`` for
a corrected citation; else, when the search's own candidates hold a window of
that episode's transcript near the wiki's citation, the moment that window
cites (its best sentence for the question, ranked by the same hybrid search:
it reads the question's rare words, which the wiki sentence may not); else
the transcript sentence that best matches the wiki sentence (and the
question), near the wiki's citation when it has one.  That time is the
transcript's own, exact for the transcript sentence; the result says so
(``moment == "transcript"``) and keeps the wiki's own time beside it.
Measured on the whole library (docs/benchmarks.md, "Wiki results at the
transcript's moment").

A wiki result and a transcript window that holds the second its citation
was checked at are one moment, so they are one result (``one_per_moment``):
the wiki passage, at the better rank of the two, cited at the window's moment
where the window ranked first.  The written passage speaks for the moment
(the listener reads the claim, as the page states it), the transcript gives
its second.  Measured on the whole library (docs/benchmarks.md, "One result
a moment"): the held-out wiki questions find their evidence first more often,
and every other set is unchanged.

``pick`` and ``one_per_moment`` are pure decisions over arrays and hits;
``transcript_moment`` gathers them from the search backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from index.backend import Index
from index.best import best_of
from index.records import Filters, Hit
from ingest.records import Time

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from index.answer_type import Quantity


@dataclass(frozen=True, slots=True)
class MomentRule:
    windows: int = 8  # transcript windows of the episode looked at
    question_weight: float = 0.3  # the match reads the wiki sentence and the question
    min_score: float = 0.45  # below it, the wiki's own time stands
    near_s: float = 600.0  # how far from the wiki's citation a match may lie
    far_penalty: float = 0.1  # score lost per near_s of distance from the citation


def pick(
    times: NDArray[np.float64],
    to_sentence: NDArray[np.float32],
    to_question: NDArray[np.float32],
    cited: float | None,
    rule: MomentRule = MomentRule(),
) -> int | None:
    """Index of the transcript sentence to cite, or None: each candidate's score
    is its cosine with the wiki sentence and with the question, less a penalty
    for its distance from the wiki's citation (candidates beyond ``near_s`` of
    it are out)."""
    if times.size == 0:
        return None
    w = rule.question_weight
    score = (1 - w) * to_sentence + w * to_question
    if cited is not None:
        distance = np.abs(times - cited)
        score = np.where(distance <= rule.near_s, score - rule.far_penalty * distance / rule.near_s,
                         -np.inf)  # fmt: skip
    best = int(np.argmax(score))
    return best if score[best] >= rule.min_score else None


# A transcript window's episode, the time it cites and the sentence said then.
Moment = tuple[str, Time, str]
Said = tuple[Time, str | None]  # a moment, and the transcript's words at it where read


def ranked_moment(
    episode: str, cited: float | None, candidates: Sequence[Moment], near_s: float
) -> Said | None:
    """The time and sentence of the first of ``candidates`` (transcript windows
    in rank order) that is of ``episode`` and within ``near_s`` of the wiki's
    citation."""
    for ep, t, text in candidates:
        if ep == episode and (cited is None or abs(t.seconds - cited) <= near_s):
            return t, text
    return None


def candidate_moments(
    index: Index,
    rows: Sequence[int],
    q: NDArray[np.float32],
    episodes: set[str],
    wants: Quantity | None = None,
) -> list[Moment]:
    """The transcript windows among ``rows`` (rank order) of ``episodes``, each
    with the time a result for it cites and that sentence (its best for the
    question: ``best.best_of``, as ``search.hit_at`` chooses)."""
    out: list[Moment] = []
    backend = index.backend
    for r in rows:
        p = backend.passage(r)
        if p.kind != "transcript" or p.episode is None or p.episode.id not in episodes:
            continue
        j = best_of(backend.sentence_vectors(r), q, p.sentences, wants)[0]
        t = p.time_of(j)
        if t is not None:
            out.append((p.episode.id, t, p.sentences[j].text))
    return out


def transcript_moment(
    index: Index,
    hit: Hit,
    q: NDArray[np.float32],
    rule: MomentRule = MomentRule(),
    candidates: Sequence[Moment] = (),
    transcribed: frozenset[str] | None = None,
) -> Said | None:
    """The transcript's moment for a wiki hit and the sentence said then, or None
    where there is none to give.  ``candidates``: the search's transcript
    windows, in rank order."""
    p = hit.passage
    episodes = index.transcribed_episodes if transcribed is None else transcribed
    if p.kind != "wiki" or p.episode is None or p.episode.id not in episodes:
        return None
    own = hit.sentence.time
    said_at = own.said_at if own is not None and own.verified == "corrected" else None
    cited = hit.time.seconds if hit.time is not None else None
    if said_at is None:
        ranked = ranked_moment(p.episode.id, cited, candidates, rule.near_s)
        if ranked is not None:
            return ranked
    backend = index.backend
    v = backend.sentence_vectors(hit.row)[hit.best_sentence]
    rows = [
        r
        for r, _ in backend.dense(v, rule.windows, Filters(episode=p.episode.id, kind="transcript"))
    ]
    times: list[float] = []
    texts: list[str] = []
    vecs: list[NDArray[np.float32]] = []
    seen: set[int] = set()
    for r in rows:
        tp = backend.passage(r)
        for s, sv in zip(tp.sentences, backend.sentence_vectors(r), strict=True):
            if s.time is not None and s.start not in seen:
                seen.add(s.start)
                times.append(s.time.seconds)
                texts.append(s.text)
                vecs.append(sv)
    if said_at is not None:
        # The check placed the claim at said_at: that second stands; its words
        # are read from the windows nearest the claim, where the check found them.
        heard = (x for t, x in zip(times, texts, strict=True) if abs(t - said_at) < 1e-6)
        return Time(said_at, exact=True), next(heard, None)
    if not vecs:
        return None
    m = np.stack(vecs)
    j = pick(np.array(times), m @ v, m @ q, cited, rule)
    return (Time(times[j], exact=True), texts[j]) if j is not None else None


def checked_time(hit: Hit) -> float | None:
    """The second at which the citation check found a wiki hit's best sentence
    said: its cited time when confirmed, the transcript's when corrected; None
    for an unverified or uncited sentence and for a transcript window."""
    t = hit.sentence.time
    if hit.passage.kind != "wiki" or t is None:
        return None
    if t.verified == "corrected":
        return t.said_at
    return t.seconds if t.verified == "confirmed" else None


def _holds(window: Hit, wiki: Hit) -> bool:
    """Whether transcript ``window`` holds the second ``wiki``'s citation was checked at."""
    at, span = checked_time(wiki), window.passage.span
    ew, ep = window.passage.episode, wiki.passage.episode
    if window.passage.kind != "transcript" or at is None or span is None or ew is None:
        return False
    return ep is not None and ep.id == ew.id and span[0] <= at <= span[1]


def one_per_moment(hits: Sequence[Hit], k: int) -> list[Hit]:
    """The first ``k`` of ``hits`` (rank order), each transcript window that holds
    a wiki hit's checked moment merged with it: the wiki hit, at the rank of
    whichever came first, cited at the window's own time where the window did
    (that time is exact and was chosen for the question).  A window merges
    with one wiki hit at most."""
    out: list[Hit] = []
    merged: set[int] = set()  # positions in ``out`` already merged
    for h in hits:
        at = next(
            (i for i, o in enumerate(out) if i not in merged and (_holds(o, h) or _holds(h, o))),
            None,
        )
        if at is None:
            out.append(h)
        else:
            first = out[at]
            if first.passage.kind == "transcript":  # the window came first: its rank, its time
                out[at] = replace(h, moment=first.time, heard=first.sentence.text)
            merged.add(at)
    # Every hit is read before the cut: the window first, its wiki hit past k.
    return out[:k]


def with_moments(
    index: Index,
    hits: Sequence[Hit],
    q: NDArray[np.float32],
    ranked: Sequence[int] = (),
    wants: Quantity | None = None,
) -> list[Hit]:
    """``hits`` with each wiki hit's transcript moment filled in where there is one
    (one already given, by ``one_per_moment``, is kept).  ``ranked``: the rows
    the search ranked, in order (the results and the candidates past them),
    whose transcript windows may give the moment."""
    transcribed = index.transcribed_episodes
    if not transcribed:
        return list(hits)
    # The episodes of the wiki hits still without a moment: a merged one has
    # its window's, and needs no candidate windows read for it.
    wiki = {
        h.passage.episode.id
        for h in hits
        if h.moment is None
        and h.passage.kind == "wiki"
        and h.passage.episode
        and h.passage.episode.id in transcribed
    }
    if not wiki:
        return list(hits)
    candidates = candidate_moments(index, ranked, q, wiki, wants)
    out = []
    for h in hits:
        if h.moment is not None:
            out.append(h)
            continue
        said = transcript_moment(index, h, q, candidates=candidates, transcribed=transcribed)
        out.append(replace(h, moment=said[0], heard=said[1]) if said is not None else h)
    return out
