"""Fusion: two ranked lists and their scores in, one order out.

A pure function, with no access to an index (as txtai hands its fusion the
dense and the keyword result lists): ``index.rank`` fetches both lists, and
the scores each candidate has on the other side, from the search backend,
then calls ``fuse``.  Two fusions:

- ``rrf``: reciprocal rank fusion, sum of 1 / (rrf_k + rank) over the lists a
  passage is in.  It needs no score scales, so it cannot be thrown off by a
  question whose BM25 scores are all huge or all tiny.
- ``weighted`` (the default, chosen by measurement, docs/retrieval.md):
  dense_weight * cosine + (1 - dense_weight) * BM25 / ceiling, where the
  ceiling is the most any passage could score on this question (the backend's
  ``keyword_ceiling``).  Both terms keep a meaning across questions: a passage
  sharing only common words with a paraphrased question gets a small BM25
  share, so the dense order stands; one naming the question's rare terms gets
  a large one.  Every candidate has both scores (the cosine of a BM25-only
  candidate is one dot product; every BM25 score comes out of one pass), so no
  missing-score guess is needed.  Min-max normalising over the candidates was
  measured worse (it makes the best of poor matches look perfect).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from index.records import FusionSettings

if TYPE_CHECKING:
    from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Ranked:
    row: int
    cosine: float  # passage vector . query vector
    bm25: float
    fused: float  # the ordering score of the mode (the cosine in "dense", BM25 in "bm25")


def candidates(dense: Sequence[int], keyword: Sequence[int]) -> list[int]:
    """The rows of both lists, each once, dense first: the order ``fuse`` expects
    its score arrays in."""
    return list(dict.fromkeys([*dense, *keyword]))


def fused_scores(
    dense: Sequence[int],
    keyword: Sequence[int],
    cosine: NDArray[np.float32],
    bm25: NDArray[np.float32],
    settings: FusionSettings = FusionSettings(),
    bm25_ceiling: float | None = None,
) -> NDArray[np.float32]:
    """Fused score of each of ``candidates(dense, keyword)``; ``cosine``/``bm25``
    are those candidates' own scores, in that order.  ``bm25_ceiling`` defaults
    to the best candidate's BM25."""
    rows = candidates(dense, keyword)
    if settings.method == "rrf":
        pos = {r: j for j, r in enumerate(rows)}
        fused = np.zeros(len(rows), dtype=np.float32)
        for ranking in (dense, keyword):
            for rank, r in enumerate(ranking, start=1):
                fused[pos[r]] += 1.0 / (settings.rrf_k + rank)
        return fused
    w = settings.dense_weight
    ceiling = float(bm25.max(initial=0.0)) if bm25_ceiling is None else bm25_ceiling
    share = bm25 / ceiling if ceiling > 0 else np.zeros_like(bm25)
    return (w * cosine + (1.0 - w) * share).astype(np.float32)


def fuse(
    dense: Sequence[int],
    keyword: Sequence[int],
    cosine: NDArray[np.float32],
    bm25: NDArray[np.float32],
    n: int,
    settings: FusionSettings = FusionSettings(),
    bm25_ceiling: float | None = None,
) -> list[Ranked]:
    """The top ``n`` of both lists in fused order, each with all its scores."""
    rows = candidates(dense, keyword)
    if not rows:
        return []
    fused = fused_scores(dense, keyword, cosine, bm25, settings, bm25_ceiling)
    # Ties (rare with RRF: a passage 3rd in one list and 3rd in the other) go to the cosine.
    order = np.lexsort((-cosine, -fused))[:n]
    return [Ranked(rows[j], float(cosine[j]), float(bm25[j]), float(fused[j])) for j in order]
