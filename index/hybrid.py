"""Keyword and hybrid ranking: what ``search`` calls for modes "bm25" and "hybrid".

Hybrid search fuses two ranked lists, the dense one (the model's cosine) and
the BM25 one (exact, normalised tokens), into one order.  Two fusions are here:

- ``rrf``: reciprocal rank fusion, sum of 1 / (RRF_K + rank) over the lists a
  passage is in.  It needs no score scales, so it cannot be thrown off by a
  question whose BM25 scores are all huge or all tiny.
- ``weighted``: DENSE_WEIGHT * cosine + (1 - DENSE_WEIGHT) * BM25 / ceiling,
  where the ceiling is the most any passage could score on this question
  (``KeywordIndex.max_score``).  Both terms keep a meaning across questions: a
  passage sharing only common words with a paraphrased question gets a small
  BM25 share, so the dense order stands; one naming the question's rare terms
  gets a large one.  Every candidate has both scores (the cosine of a BM25-only
  candidate is one dot product; every BM25 score comes out of one pass), so no
  missing-score guess is needed.  Min-max normalising over the candidates
  instead was measured worse (it makes the best of poor matches look perfect).

The default was chosen by measurement (docs/retrieval.md).  A loaded index may
override it with ``index.extras["fusion"]`` (the evaluation does, to compare).

Scores returned to the caller are always the dense cosine of each passage,
whatever the order: ``search``/``answer`` compare ``hits[0].score`` and
``hit.score`` against thresholds calibrated on cosines (weak-match marking,
which passages may give answer sentences), and fused or BM25 scores live on
other scales (RRF's are ~0.03 for every question).  Only the order changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from index.keyword import KeywordIndex
from index.search import admitted
from index.store import Index
from ingest.errors import PodciteError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from index.search import Filters

Fusion = Literal["rrf", "weighted"]
FUSIONS: tuple[Fusion, ...] = ("rrf", "weighted")
DEFAULT_FUSION: Fusion = "weighted"
RRF_K = 60  # the usual constant; ranks 1 and 10 differ by ~13%, so neither list dominates
DENSE_WEIGHT = 0.7  # weighted fusion: share of the cosine (0.5-0.8 measured)
DEPTH = 100  # candidates from each list before fusing (20, 40, 100 measured alike; cheap)

DenseFn = Callable[[Index, "NDArray[np.float32]", int, "Filters"], list[tuple[int, float]]]


@dataclass(frozen=True, slots=True)
class Ranked:
    row: int
    cosine: float  # passage vector . query vector
    bm25: float
    fused: float  # the ordering score of the mode (BM25 itself in mode "bm25")


def keyword_index(index: Index) -> KeywordIndex:
    kw = index.extras.get("keyword")
    if not isinstance(kw, KeywordIndex):
        raise PodciteError(
            f"{index.path}: this index has no keyword index (or one from an older podcite); "
            "rebuild it with `podcite ingest` to use bm25 or hybrid search"
        )
    return kw


def bm25_scores(index: Index, query: str, filters: Filters) -> NDArray[np.float32]:
    """BM25 score of every row, zero for rows the filters do not admit.  Filtering
    the full score array (rather than a top-n) means a filter never empties a list
    that has matches further down."""
    scores = keyword_index(index).scores(query)
    if filters:
        scores = np.where(admitted(index, filters), scores, 0.0).astype(np.float32)
    return scores


def _top(scores: NDArray[np.float32], n: int) -> list[int]:
    """Rows of the n highest positive scores, best first (a row that shares no
    term with the question is not a keyword match at all)."""
    positive = int(np.count_nonzero(scores > 0))
    n = min(n, positive)
    if n == 0:
        return []
    part = np.argpartition(-scores, n - 1)[:n]
    return [int(i) for i in part[np.argsort(-scores[part], kind="stable")]]


def fuse(
    dense: list[int],
    keyword: list[int],
    cosine: NDArray[np.float32],
    bm25: NDArray[np.float32],
    fusion: Fusion,
    k: int | None = None,
    dense_weight: float | None = None,
    bm25_ceiling: float | None = None,
) -> NDArray[np.float32]:
    """Fused scores of the candidates ``dense + keyword`` (deduplicated, in that
    order); ``cosine``/``bm25`` are the candidates' own scores, same order.
    ``k``/``dense_weight`` default to the module's RRF_K/DENSE_WEIGHT;
    ``bm25_ceiling`` to the best candidate's BM25."""
    rows = list(dict.fromkeys(dense + keyword))
    if fusion == "rrf":
        k = RRF_K if k is None else k
        pos = {r: j for j, r in enumerate(rows)}
        fused = np.zeros(len(rows), dtype=np.float32)
        for ranking in (dense, keyword):
            for rank, r in enumerate(ranking, start=1):
                fused[pos[r]] += 1.0 / (k + rank)
        return fused
    w = DENSE_WEIGHT if dense_weight is None else dense_weight
    ceiling = float(bm25.max(initial=0.0)) if bm25_ceiling is None else bm25_ceiling
    share = bm25 / ceiling if ceiling > 0 else np.zeros_like(bm25)
    return (w * cosine + (1.0 - w) * share).astype(np.float32)


def rank(
    index: Index,
    query: str,
    q: NDArray[np.float32],
    n: int,
    filters: Filters,
    mode: Literal["bm25", "hybrid"],
    dense_fn: DenseFn,
    fusion: Fusion | None = None,
) -> list[Ranked]:
    """The top ``n`` rows of ``mode`` with all their scores (for ``ranked_ids``,
    the evaluation, and callers that want to show BM25 or fused scores)."""
    scores = bm25_scores(index, query, filters)
    if mode == "bm25":
        rows = _top(scores, n)
        cos = index.vectors[rows] @ q if rows else np.zeros(0, dtype=np.float32)
        return [
            Ranked(r, float(c), float(scores[r]), float(scores[r]))
            for r, c in zip(rows, cos, strict=True)
        ]
    depth = max(n, DEPTH)
    dense = [r for r, _ in dense_fn(index, q, depth, filters)]
    keyword = _top(scores, depth)
    rows = list(dict.fromkeys(dense + keyword))
    if not rows:
        return []
    cos = (index.vectors[rows] @ q).astype(np.float32)
    bm = scores[rows]
    how: Fusion = fusion or index.extras.get("fusion", DEFAULT_FUSION)
    ceiling = keyword_index(index).max_score(query) if how == "weighted" else None
    fused = fuse(dense, keyword, cos, bm, how, bm25_ceiling=ceiling)
    # Ties (rare with RRF: a passage 3rd in one list and 3rd in the other) go to the cosine.
    order = np.lexsort((-cos, -fused))[:n]
    return [Ranked(rows[j], float(cos[j]), float(bm[j]), float(fused[j])) for j in order]


def ranked_ids(
    index: Index,
    query: str,
    q: NDArray[np.float32],
    pool: int,
    filters: Filters,
    mode: str,
    dense_fn: DenseFn,
) -> list[tuple[int, float]]:
    """(row, cosine) of the top ``pool`` passages in the order of ``mode``:
    "bm25" (keyword only) or "hybrid" (dense and keyword fused).  The score is
    the dense cosine so that answer thresholds keep their meaning (see above)."""
    if mode not in ("bm25", "hybrid"):
        raise PodciteError(f"unknown search mode {mode!r}: dense, bm25 or hybrid")
    kind: Literal["bm25", "hybrid"] = "bm25" if mode == "bm25" else "hybrid"
    return [(r.row, r.cosine) for r in rank(index, query, q, pool, filters, kind, dense_fn)]
