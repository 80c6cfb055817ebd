"""The moment to cite for a wiki result, taken from the episode's transcript.

A wiki page is written from its episode, and its citations are often off by a
minute or many (docs/benchmarks.md, "Citation check").  When the episode's
transcript is in the same index, the listener is better served by the second
at which the transcript says the claim: the citation check's ``said_at`` for
a corrected citation, else the transcript sentence that best matches the wiki
sentence (and the question), near the wiki's citation when it has one.  That
time is the transcript's own, exact for the transcript sentence; the result
says so (``moment == "transcript"``) and keeps the wiki's own time beside it.

``pick`` is the pure decision over arrays; ``transcript_moment`` gathers them
from the search backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from index.backend import Index
from index.records import Filters, Hit
from ingest.records import Time

if TYPE_CHECKING:
    from numpy.typing import NDArray


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


def transcript_moment(
    index: Index, hit: Hit, q: NDArray[np.float32], rule: MomentRule = MomentRule()
) -> Time | None:
    """The transcript's moment for a wiki hit, or None where there is none to give."""
    p = hit.passage
    if p.kind != "wiki" or p.episode is None or p.episode.id not in index.transcribed_episodes:
        return None
    own = hit.sentence.time
    if own is not None and own.verified == "corrected" and own.said_at is not None:
        return Time(own.said_at, exact=True)
    backend = index.backend
    v = backend.sentence_vectors(hit.row)[hit.best_sentence]
    rows = [
        r
        for r, _ in backend.dense(v, rule.windows, Filters(episode=p.episode.id, kind="transcript"))
    ]
    times: list[float] = []
    vecs: list[NDArray[np.float32]] = []
    seen: set[int] = set()
    for r in rows:
        tp = backend.passage(r)
        for s, sv in zip(tp.sentences, backend.sentence_vectors(r), strict=True):
            if s.time is not None and s.start not in seen:
                seen.add(s.start)
                times.append(s.time.seconds)
                vecs.append(sv)
    if not vecs:
        return None
    m = np.stack(vecs)
    cited = hit.time.seconds if hit.time is not None else None
    j = pick(np.array(times), m @ v, m @ q, cited, rule)
    return Time(times[j], exact=True) if j is not None else None


def with_moments(index: Index, hits: Sequence[Hit], q: NDArray[np.float32]) -> list[Hit]:
    """``hits`` with each wiki hit's transcript moment filled in where there is one."""
    if not index.transcribed_episodes:
        return list(hits)
    out = []
    for h in hits:
        t = transcript_moment(index, h, q)
        out.append(replace(h, moment=t) if t is not None else h)
    return out
