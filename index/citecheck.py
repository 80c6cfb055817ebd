"""Citation check: is a wiki citation's claim said at the cited moment?

Wiki citations were written by a model and are often off (the seed cites
1:26:21 for psilocybin and 5-HT2A; the transcript says it at 1:35:11).  When
a wiki page's episode has a transcript in the same index, each cited sentence
is matched against every sentence of the transcript:

- ``confirmed``: said within ``near`` seconds of the cited time;
- ``corrected``: said clearly elsewhere; the wiki's time is kept and the
  transcript's time is given as ``said_at``;
- ``unverified``: no confident match.

The match score of a transcript position is the cosine between the wiki
sentence's vector and the transcript sentence's vector (alone, or pooled with
its neighbours, whichever is higher: a wiki sentence often summarises what
was said over several short spoken sentences), plus a word-overlap term: the
share of the wiki sentence's keyword tokens (``index.keyword.normalise_tokens``:
stemmed, numbers and units in one spelling, so "one to three Hertz" meets
"1-3 Hz") said in the next few transcript sentences, each token weighted by
its rarity in the episode (a name or a number says more than "brain").
The weights and thresholds were chosen on hand-checked citations
(eval/citation_labels.jsonl; eval/citation_labels_heldout.jsonl is held out
for the reported precision: bench/citecheck.py, docs/benchmarks.md).

A whole-page alignment (dynamic programming over a page's cited sentences in
page order, monotone in transcript time) was built and measured against this
per-sentence match: it placed no more claims right, because a page's
citations go back in time a quarter of the time (docs/benchmarks.md), so it
is kept in the benchmark only.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from index.embedder import normalise
from index.keyword import STOPWORDS, normalise_tokens, words
from ingest.records import Passage, Sentence, Time, Verdict

if TYPE_CHECKING:
    from numpy.typing import NDArray


def content_words(text: str) -> set[str]:
    """Crude stems of a text's content words (the first five letters catch
    most inflections: receptor/receptors, dissociate/dissociation)."""
    return {w[:5] for w in words(text) if w not in STOPWORDS and len(w) > 2}


def terms(text: str) -> set[str]:
    """The keyword tokens of a text, each once (what the word overlap counts)."""
    return set(normalise_tokens(text))


@dataclass(frozen=True, slots=True)
class Params:
    near: float = 60.0  # seconds either side of the cited time that count as "at" it
    overlap_weight: float = 0.5
    window: int = 5  # transcript sentences whose words a position's overlap counts
    confirm: float = 0.7  # score a near match needs to confirm ...
    confirm_margin: float = 0.05  # ... when it trails the best far match by at most this
    confirm_alone: float = 1.0  # a near match this good confirms whatever is said elsewhere
    correct: float = 1.0  # score a far match needs to correct: high, a wrong fix misleads
    margin: float = 0.1  # how much better a far match must be than the best near one
    unique: float = 0.1  # ... and than the best match a minute or more away from it


@dataclass
class Timeline:
    """One episode's transcript sentences, in time order, with their vectors."""

    times: NDArray[np.float64]
    vectors: NDArray[np.float32]  # each sentence alone
    context: NDArray[np.float32]  # each sentence pooled with its neighbours
    postings: dict[str, NDArray[np.int64]]  # term -> sentences that say it
    sentences: int

    def overlap(self, text: str, window: int) -> NDArray[np.float32]:
        """Per position, the rarity-weighted share of ``text``'s terms said in
        the ``window`` sentences from it on."""
        n = self.sentences
        out = np.zeros(n, dtype=np.float32)
        total = 0.0
        for term in terms(text):
            rows = self.postings.get(term)
            df = 0 if rows is None else len(rows)
            idf = math.log((n + 1) / (df + 0.5))
            total += idf
            if rows is None:
                continue
            hit = np.zeros(n + window, dtype=bool)
            for k in range(window):  # position p counts a term said at p .. p+window-1
                hit[np.maximum(rows - k, 0)] = True
            out += idf * hit[:n]
        return out / total if total > 0 else out


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
    where: dict[str, list[int]] = {}
    for i, (_, text, _) in enumerate(sentences):
        for term in terms(text):
            where.setdefault(term, []).append(i)
    postings = {t: np.array(rows, dtype=np.int64) for t, rows in where.items()}
    times = np.array([t for t, _, _ in sentences])
    return Timeline(times, vecs, ctx, postings, len(sentences))


def match_scores(
    tl: Timeline, text: str, vector: NDArray[np.float32], p: Params = Params()
) -> NDArray[np.float32]:
    """How well each transcript position says the wiki sentence ``text``."""
    emb: NDArray[np.float32] = np.maximum(tl.vectors @ vector, tl.context @ vector)
    if p.overlap_weight:
        emb = emb + p.overlap_weight * tl.overlap(text, p.window)
    return emb


def decide(
    times: NDArray[np.float64], score: NDArray[np.float32], cited: float, p: Params = Params()
) -> Check:
    """The verdict for one citation from its match scores (pure)."""
    near = np.abs(times - cited) <= p.near
    far = ~near
    near_score = float(score[near].max()) if near.any() else -1.0
    near_at = float(times[near][int(np.argmax(score[near]))]) if near.any() else None
    b = int(np.argmax(np.where(far, score, -np.inf))) if far.any() else int(np.argmax(score))
    best_score, best_time = float(score[b]), float(times[b])
    if near_at is not None and (
        near_score >= p.confirm_alone
        or (near_score >= p.confirm and near_score >= best_score - p.confirm_margin)
    ):
        return Check("confirmed", near_at, near_score, max(near_score, best_score), best_time)
    elsewhere = far & (np.abs(times - best_time) > p.near)
    runner_up = float(score[elsewhere].max()) if elsewhere.any() else -1.0
    if (
        far.any()
        and best_score >= p.correct
        and best_score - near_score >= p.margin
        and best_score - runner_up >= p.unique
    ):
        return Check("corrected", best_time, near_score, best_score, best_time)
    return Check("unverified", None, near_score, max(near_score, best_score), best_time)


def check(
    tl: Timeline, cited: float, text: str, vector: NDArray[np.float32], p: Params = Params()
) -> Check:
    return decide(tl.times, match_scores(tl, text, vector, p), cited, p)


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
