"""Ranking: a question and its vector -> rows of the index in the order of a mode.

The one place that asks the search backend for ranked lists: the dense list,
the keyword list, and for hybrid the scores each candidate has on the other
side; then ``index.fusion.fuse`` orders them without ever seeing the backend.
Every ``Ranked`` carries the dense cosine, whatever the order: thresholds
(weak matches, abstention, which passages may give answer sentences) are
calibrated on cosines, and fused or BM25 scores live on other scales.
``ranking`` also gives the best cosine of every candidate it looked at (in
dense and hybrid, the best passage in scope), so abstaining does not depend
on how many results were asked for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from index.backend import Index, rows_of
from index.coverage import said_in
from index.errors import IndexFormatError
from index.fusion import Ranked, candidates, fuse
from index.records import Filters, FusionSettings, Mode
from index.spelling import with_spellings

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


def default_mode(index: Index) -> Mode:
    """Hybrid wherever the index has a keyword index (docs/retrieval.md), else dense."""
    return "hybrid" if index.backend.has_keyword else "dense"


@dataclass(frozen=True, slots=True)
class Ranking:
    ranked: list[Ranked]  # the first n, in the mode's order
    # The best cosine among all the candidates ranked, kept or not (-1 where
    # there were none): in dense and hybrid the dense list's first, so the best
    # passage in scope whatever n or the fusion; in bm25 the best of the keyword
    # list's first ``FusionSettings.depth``, whatever n.
    best_cosine: float


def ranking(
    index: Index,
    query: str,
    q: NDArray[np.float32],
    n: int,
    filters: Filters = Filters(),
    mode: Mode = "hybrid",
    fusion: FusionSettings = FusionSettings(),
) -> Ranking:
    """The top ``n`` rows of ``mode`` with all their scores, and the best cosine
    of every candidate behind them."""
    backend = index.backend
    if mode == "dense":
        ranked = [Ranked(r, s, 0.0, s) for r, s in backend.dense(q, n, filters)]
        return Ranking(ranked, _best(r.cosine for r in ranked))
    if not backend.has_keyword:
        where = f"{index.path}: " if index.path else ""
        raise IndexFormatError(
            f"{where}this index has no keyword index (or one from an older podcite); "
            "rebuild it with `podcite ingest` to use bm25 or hybrid search"
        )
    depth = max(n, fusion.depth)
    # Words the library never says are read in their other spellings too
    # (American for British, without accents: index/spelling.py).
    query = with_spellings(query, said_in(backend))
    if mode == "bm25":
        # The keyword list to the same depth as hybrid's, so that its best cosine
        # (what abstaining reads) does not change with n.
        kw = backend.keyword(query, depth, filters)
        cos = backend.cosines(q, rows_of(kw))
        ranked = [Ranked(r, float(c), s, s) for (r, s), c in zip(kw[:n], cos[:n], strict=True)]
        return Ranking(ranked, _best(float(c) for c in cos))
    dense = rows_of(backend.dense(q, depth, filters))
    keyword = rows_of(backend.keyword(query, depth, filters))
    rows = candidates(dense, keyword)
    cos = backend.cosines(q, rows)
    bm = backend.keyword_scores(query, rows)
    ceiling = backend.keyword_ceiling(query) if fusion.method == "weighted" else None
    ranked = fuse(dense, keyword, cos, bm, n, fusion, bm25_ceiling=ceiling)
    return Ranking(ranked, _best(float(c) for c in cos))


def _best(cosines: Iterable[float]) -> float:
    return max(cosines, default=-1.0)
