"""Search: question -> ranked Hits, each with its best sentence.

Pure functions over a loaded Index; the page, the JSON API, the CLI and the
evaluation all call ``search`` (and ``answer``) so they can never disagree.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np

from index.store import Index
from ingest.errors import PodciteError, QueryError
from ingest.records import Hit, Passage

if TYPE_CHECKING:
    from numpy.typing import NDArray

Mode = Literal["dense", "bm25", "hybrid"]
MAX_QUERY_CHARS = 1000
MAX_K = 50
# Below this cosine, the best passage does not answer the question: podcite
# abstains and marks the results weak.  Calibrated on the shared relevant_qs /
# irrelevant_qs sets with their labels audited by hand (eval/scope_audit.jsonl:
# a fifth of the disputed ones were wrong for this library), `podcite eval`,
# docs/benchmarks.md.
ABSTAIN_BELOW = 0.51
_QUERY_CACHE = 512
_FILTER_VECTORS = 8  # a copy of the admitted rows' vectors each
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Filters:
    kind: str | None = None  # "wiki" | "transcript"
    episode: str | None = None  # YouTube id
    after: str | None = None  # ISO dates, inclusive, on the episode's date
    before: str | None = None

    def __bool__(self) -> bool:
        return any((self.kind, self.episode, self.after, self.before))

    def admits(self, p: Passage) -> bool:
        if self.kind and p.kind != self.kind:
            return False
        if self.episode and (p.episode is None or p.episode.id != self.episode):
            return False
        if self.after or self.before:
            date = p.episode.date if p.episode else None
            if date is None:
                return False
            if self.after and date < self.after:
                return False
            if self.before and date > self.before:
                return False
        return True


def check_query(query: str, k: int) -> str:
    """The one place a query is validated, so every edge says the same thing."""
    if not isinstance(query, str) or not query.strip():
        raise QueryError("q", "the question is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError("q", f"the question is longer than {MAX_QUERY_CHARS} characters")
    if not 1 <= k <= MAX_K:
        raise QueryError("k", f"k must be between 1 and {MAX_K}")
    return query.strip()


def _cached(index: Index, name: str, key: Hashable, size: int, make: Callable[[], T]) -> T:
    """A small least-recently-used cache kept on the index (per loaded index,
    so a swapped-in build never sees another build's entries)."""
    cache: OrderedDict[Hashable, T] = index.extras.setdefault(name, OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = make()
    if len(cache) > size:
        cache.popitem(last=False)
    return value


def embed_query(index: Index, query: str) -> NDArray[np.float32]:
    def make() -> NDArray[np.float32]:
        if index.embedder is None:
            raise PodciteError("this index was opened without an embedder")
        vec: NDArray[np.float32] = index.embedder.encode([query])[0]
        return vec

    return _cached(index, "query_cache", query, _QUERY_CACHE, make)


def _dense(
    index: Index, q: NDArray[np.float32], n: int, filters: Filters
) -> list[tuple[int, float]]:
    if not filters:
        scores, ids = index.faiss.search(q[None, :], min(n, len(index.passages)))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
    # Filtered: score only the admitted rows, so a filter never empties a list
    # that has matches further down (post-filtering a top-n would).
    rows, vectors = _admitted_vectors(index, filters)
    if rows.size == 0:
        return []
    scores = vectors @ q
    top = np.argsort(-scores)[:n]
    return [(int(rows[t]), float(scores[t])) for t in top]


def admitted(index: Index, filters: Filters) -> NDArray[np.bool_]:
    """Which rows the filters admit, cached per index: the dense and the keyword
    rankings both filter inside the search with this one mask."""
    return _cached(
        index,
        "filter_masks",
        filters,
        256,
        lambda: np.fromiter((filters.admits(p) for p in index.passages), bool, len(index.passages)),
    )


def _admitted_vectors(
    index: Index, filters: Filters
) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """The admitted rows and a contiguous copy of their vectors, for the last few
    filters used: gathering 18,000 transcript rows on every query doubled the
    time of a kind=transcript search."""

    def make() -> tuple[NDArray[np.intp], NDArray[np.float32]]:
        rows = np.flatnonzero(admitted(index, filters))
        return rows, np.ascontiguousarray(index.vectors[rows])

    return _cached(index, "filter_vectors", filters, _FILTER_VECTORS, make)


def best_sentence(index: Index, i: int, q: NDArray[np.float32]) -> tuple[int, float]:
    sims = index.sentence_vectors_of(i).astype(np.float32) @ q
    j = int(np.argmax(sims))
    return j, float(sims[j])


def _same_moment(a: Hit, b: Hit) -> bool:
    """Two hits show the same moment: one document, and the same best sentence
    or (transcript windows) overlapping time spans."""
    if a.passage.document_id != b.passage.document_id:
        return False
    if a.sentence.start == b.sentence.start:
        return True
    sa, sb = a.passage.span, b.passage.span
    return sa is not None and sb is not None and sa[0] < sb[1] and sb[0] < sa[1]


def search(
    index: Index,
    query: str,
    k: int = 5,
    *,
    filters: Filters | None = None,
    mode: Mode | None = None,
) -> list[Hit]:
    query = check_query(query, k)
    filters = filters or Filters()
    if mode is None:  # hybrid wherever the index has a keyword index: docs/retrieval.md
        mode = "hybrid" if index.extras.get("keyword") is not None else "dense"
    q = embed_query(index, query)
    pool = max(4 * k, 20)  # room to collapse duplicates and still return k
    if mode == "dense":
        ranked = _dense(index, q, pool, filters)
    else:
        from index.hybrid import ranked_ids

        ranked = ranked_ids(index, query, q, pool, filters, mode, _dense)
    # A generator: best sentences are found only for the rows looked at.
    hits = distinct((hit_at(index, i, score, q) for i, score in ranked), k)
    return [replace(h, rank=r + 1) for r, h in enumerate(hits)]


def hit_at(index: Index, row: int, score: float, q: NDArray[np.float32]) -> Hit:
    """Row ``row`` as a result for query vector ``q``, with its best sentence."""
    return Hit(index.passages[row], score, best_sentence(index, row, q)[0], row=row)


def distinct(hits: Iterable[Hit], k: int | None = None) -> list[Hit]:
    """The first ``k`` (or all) of ``hits``, in order, leaving out any that shows
    the same moment as one kept before it."""
    kept: list[Hit] = []
    for hit in hits:
        if any(_same_moment(hit, h) for h in kept):
            continue
        kept.append(hit)
        if len(kept) == k:
            break
    return kept


@dataclass(frozen=True, slots=True)
class AnswerSentence:
    hit: Hit  # the result it comes from (its passage gives document and episode)
    sentence: int  # index into hit.passage.sentences
    score: float

    @property
    def text(self) -> str:
        return self.hit.passage.sentences[self.sentence].text


def abstains(hits: list[Hit], threshold: float = ABSTAIN_BELOW) -> bool:
    """True when nothing in the library answers: no hit, or the best is too weak."""
    return not hits or max(h.score for h in hits) < threshold


def mark_weak(hits: list[Hit], threshold: float = ABSTAIN_BELOW) -> list[Hit]:
    return [replace(h, weak=h.score < threshold) for h in hits]


def answer(
    index: Index,
    query: str,
    hits: list[Hit],
    max_sentences: int = 3,
    pool: int = 5,
    threshold: float = ABSTAIN_BELOW,
) -> list[AnswerSentence]:
    """Extractive answer: the sentences, across the top passages, closest to the
    question.  Text from the sources only; nothing is generated.  Empty when
    the library does not answer the question (see ``abstains``)."""
    if abstains(hits, threshold):
        return []
    q = embed_query(index, query.strip())
    candidates: list[AnswerSentence] = []
    top = max(h.score for h in hits)  # cosines; in hybrid order the first is not always the best
    for h in hits[:pool]:
        sims = index.sentence_vectors_of(h.row).astype(np.float32) @ q
        for j, s in enumerate(sims):
            # A sentence is judged by itself and by the passage it sits in.
            candidates.append(AnswerSentence(h, j, 0.6 * float(s) + 0.4 * h.score))
    candidates.sort(key=lambda c: -c.score)
    chosen: list[AnswerSentence] = []
    best = candidates[0].score
    for c in candidates:
        if len(chosen) == max_sentences:
            break
        # Keep only sentences close to the best one, and from reasonably strong passages.
        if c.score < best - 0.08 or c.hit.score < max(top - 0.1, threshold):
            continue
        if any(c.text == o.text for o in chosen):
            continue
        chosen.append(c)
    return chosen
