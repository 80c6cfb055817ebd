"""Citation check: is a wiki citation's claim said at the cited moment?

Wiki citations were written by a model and are often off (the seed cites
1:26:21 for psilocybin and 5-HT2A; the transcript says it at 1:35:11).  When
a wiki page's episode has a transcript in the same index, each cited sentence
is aligned with the transcript's sentences near the cited time, and further
away when nothing near matches:

- ``confirmed``: said within ``near`` seconds of the cited time;
- ``corrected``: said clearly elsewhere; the wiki's time is kept and the
  transcript's time is given as ``said_at``;
- ``unverified``: no confident match.

The match score of a transcript position is the cosine between the wiki
sentence's vector and the transcript sentence's vector (alone, or pooled with
its neighbours, whichever is higher: a wiki sentence often summarises what
was said over several short spoken sentences), plus a word-overlap term.
The weights and thresholds were chosen on hand-checked citations
(eval/citation_labels.jsonl, bench/citecheck.py, docs/benchmarks.md).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from index.embedder import normalise
from index.keyword import STOPWORDS, words
from ingest.records import Passage, Sentence, Time, Verdict

if TYPE_CHECKING:
    from numpy.typing import NDArray

def content_words(text: str) -> set[str]:
    """Crude stems of a text's content words (the first five letters catch
    most inflections: receptor/receptors, dissociate/dissociation)."""
    return {w[:5] for w in words(text) if w not in STOPWORDS and len(w) > 2}


@dataclass(frozen=True, slots=True)
class Params:
    near: float = 60.0  # seconds either side of the cited time that count as "at" it
    overlap_weight: float = 0.5
    confirm: float = 0.55  # score a near match needs to confirm
    correct: float = 0.90  # score a far match needs to correct: high, a wrong fix misleads
    margin: float = 0.20  # how much better a far match must be than the best near one
    confirm_margin: float = 0.05  # a near match may trail the best far one by this much


@dataclass
class Timeline:
    """One episode's transcript sentences, in time order, with their vectors."""

    times: NDArray[np.float64]
    vectors: NDArray[np.float32]  # each sentence alone
    context: NDArray[np.float32]  # each sentence pooled with its neighbours
    words: list[set[str]]  # content words of each sentence and the two after it


@dataclass(frozen=True, slots=True)
class Check:
    verdict: Verdict
    said_at: float | None
    near_score: float
    best_score: float
    best_time: float


def timeline(sentences: list[tuple[float, str, NDArray[np.float32]]]) -> Timeline:
    sentences = sorted(sentences, key=lambda s: s[0])
    vecs = np.stack([v for _, _, v in sentences]).astype(np.float32)
    padded = np.vstack([vecs[:1] * 0, vecs, vecs[:1] * 0])
    ctx = normalise(padded[:-2] + padded[1:-1] + padded[2:])
    texts = [t for _, t, _ in sentences]
    words = [content_words(" ".join(texts[i : i + 3])) for i in range(len(texts))]
    return Timeline(np.array([t for t, _, _ in sentences]), vecs, ctx, words)


def check(
    tl: Timeline, cited: float, text: str, vector: NDArray[np.float32], p: Params = Params()
) -> Check:
    emb = np.maximum(tl.vectors @ vector, tl.context @ vector)
    wiki_words = content_words(text)
    if wiki_words and p.overlap_weight:
        overlap = np.array([len(wiki_words & w) / len(wiki_words) for w in tl.words])
        score = emb + p.overlap_weight * overlap
    else:
        score = emb
    near = np.abs(tl.times - cited) <= p.near
    best = int(np.argmax(score))
    best_score = float(score[best])
    near_score = float(score[near].max()) if near.any() else -1.0
    near_at = float(tl.times[near][int(np.argmax(score[near]))]) if near.any() else None
    if near_score >= p.confirm and near_score >= best_score - p.confirm_margin:
        return Check("confirmed", near_at, near_score, best_score, float(tl.times[best]))
    if best_score >= p.correct and best_score - near_score >= p.margin:
        t = float(tl.times[best])
        return Check("corrected", t, near_score, best_score, t)
    return Check("unverified", None, near_score, best_score, float(tl.times[best]))


def timelines(
    passages: list[Passage], sentence_vectors: list[NDArray[np.float32]]
) -> dict[str, Timeline]:
    """Per episode id, the timeline of its (first) transcript in this build."""
    by_episode: dict[str, dict[int, tuple[float, str, NDArray[np.float32]]]] = {}
    owner: dict[str, str] = {}
    for p, vecs in zip(passages, sentence_vectors, strict=True):
        if p.kind != "transcript" or p.episode is None:
            continue
        if owner.setdefault(p.episode.id, p.document_id) != p.document_id:
            continue
        seen = by_episode.setdefault(p.episode.id, {})
        for s, v in zip(p.sentences, vecs, strict=True):
            if s.time is not None and s.start not in seen:
                seen[s.start] = (s.time.seconds, s.text, np.asarray(v, dtype=np.float32))
    return {ep: timeline(list(sents.values())) for ep, sents in by_episode.items() if sents}


def verify(
    passages: list[Passage],
    sentence_vectors: list[NDArray[np.float32]],
    params: Params = Params(),
) -> tuple[list[Passage], Counter[str]]:
    """Passages with every checkable wiki citation given its verdict."""
    tls = timelines(passages, sentence_vectors)
    counts: Counter[str] = Counter()
    out: list[Passage] = []
    for p, vecs in zip(passages, sentence_vectors, strict=True):
        tl = tls.get(p.episode.id) if p.kind == "wiki" and p.episode else None
        if tl is None or not any(s.time and s.time.exact for s in p.sentences):
            out.append(p)
            continue
        sentences: list[Sentence] = []
        for s, v in zip(p.sentences, vecs, strict=True):
            if s.time is not None and s.time.exact:
                c = check(tl, s.time.seconds, s.text, np.asarray(v, dtype=np.float32), params)
                counts[c.verdict] += 1
                said = c.said_at if c.verdict == "corrected" else None
                s = replace(s, time=Time(s.time.seconds, True, c.verdict, said))
            sentences.append(s)
        anchor = p.anchor
        if anchor is not None and anchor.exact:
            anchor = next(s.time for s in sentences if s.time is not None and s.time.exact)
        out.append(replace(p, sentences=tuple(sentences), anchor=anchor))
    return out, counts
