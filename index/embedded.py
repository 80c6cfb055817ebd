"""The embedded search backend: FAISS (dense) and bm25s (keyword) in this process.

It serves one index directory as ``index.store`` loaded it: passages in row
order, their vectors in a FAISS inner-product index, sentence vectors, and the
BM25 index.  Filters run inside the ranking: a mask of admitted rows (cached
per filter) scores only what the filter admits, so a filter never empties a
list that has matches further down (post-filtering a top-n would).

``add``/``drop_document`` change the loaded copy only; the index directory is
written by ``index.store`` alone (one owner of the format).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from index.backend import LRU, Ranking
from index.errors import IndexFormatError
from index.keyword import KeywordIndex, build_keyword_index
from index.records import Filters

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from index.store import Stored
    from ingest.records import Passage

_FILTER_MASKS = 256
_FILTER_VECTORS = 8  # a contiguous copy of the admitted rows' vectors each


class EmbeddedBackend:
    def __init__(self, stored: Stored) -> None:
        self._passages: list[Passage] = list(stored.passages)
        self._vectors = stored.vectors
        self._sentences = stored.sentence_vectors
        self._starts = stored.sentence_start
        self._faiss: Any = stored.faiss
        self._keyword: KeywordIndex | None = stored.keyword
        self._masks: LRU[Filters, NDArray[np.bool_]] = LRU(_FILTER_MASKS)
        self._filtered: LRU[Filters, tuple[NDArray[np.intp], NDArray[np.float32]]] = LRU(
            _FILTER_VECTORS
        )
        self._last_bm25: tuple[str, NDArray[np.float32]] | None = None
        self._by_document: dict[str, list[int]] | None = None

    # -- what it holds ---------------------------------------------------------

    @property
    def has_keyword(self) -> bool:
        return self._keyword is not None

    def count(self) -> int:
        return len(self._passages)

    def passage(self, row: int) -> Passage:
        return self._passages[row]

    def passages(self) -> list[Passage]:
        """Every passage in row order (the embedded backend holds them all)."""
        return self._passages

    def document_rows(self, document_id: str) -> list[int]:
        if self._by_document is None:
            by: dict[str, list[int]] = {}
            for row, p in enumerate(self._passages):
                by.setdefault(p.document_id, []).append(row)
            for rows in by.values():
                rows.sort(key=lambda r: self._passages[r].start)
            self._by_document = by
        return list(self._by_document.get(document_id, ()))

    @property
    def vectors(self) -> NDArray[np.float32]:
        return self._vectors

    def sentence_vectors(self, row: int) -> NDArray[np.float32]:
        a = int(self._starts[row])
        out: NDArray[np.float32] = self._sentences[
            a : a + len(self._passages[row].sentences)
        ].astype(np.float32)
        return out

    # -- dense -----------------------------------------------------------------

    def dense(self, q: NDArray[np.float32], n: int, filters: Filters) -> Ranking:
        if not filters:
            if self._faiss is None:
                scores = self._vectors @ q
                top = np.argsort(-scores)[:n]
                return [(int(i), float(scores[i])) for i in top]
            found, ids = self._faiss.search(q[None, :], min(n, self.count()))
            return [(int(i), float(s)) for i, s in zip(ids[0], found[0], strict=True) if i >= 0]
        rows, vectors = self._admitted_vectors(filters)
        if rows.size == 0:
            return []
        scores = vectors @ q
        top = np.argsort(-scores)[:n]
        return [(int(rows[t]), float(scores[t])) for t in top]

    def cosines(self, q: NDArray[np.float32], rows: Sequence[int]) -> NDArray[np.float32]:
        if not rows:
            return np.zeros(0, dtype=np.float32)
        out: NDArray[np.float32] = (self._vectors[list(rows)] @ q).astype(np.float32)
        return out

    # -- keyword ---------------------------------------------------------------

    def _bm25(self, query: str) -> NDArray[np.float32]:
        """Every row's BM25 score, for the last query asked (hybrid search asks
        for the top rows and then for the scores of the dense candidates)."""
        if self._last_bm25 is not None and self._last_bm25[0] == query:
            return self._last_bm25[1]
        if self._keyword is None:
            raise IndexFormatError(
                "this index has no keyword index (or one from an older podcite); "
                "rebuild it with `podcite ingest` to use bm25 or hybrid search"
            )
        scores = self._keyword.scores(query)
        self._last_bm25 = (query, scores)
        return scores

    def keyword(self, query: str, n: int, filters: Filters) -> Ranking:
        scores = self._bm25(query)
        if filters:
            scores = np.where(self.admitted(filters), scores, 0.0).astype(np.float32)
        positive = int(np.count_nonzero(scores > 0))  # no shared term: not a keyword match
        n = min(n, positive)
        if n == 0:
            return []
        part = np.argpartition(-scores, n - 1)[:n]
        top = part[np.argsort(-scores[part], kind="stable")]
        return [(int(i), float(scores[i])) for i in top]

    def keyword_scores(self, query: str, rows: Sequence[int]) -> NDArray[np.float32]:
        out: NDArray[np.float32] = self._bm25(query)[list(rows)].astype(np.float32)
        return out

    def keyword_ceiling(self, query: str) -> float:
        if self._keyword is None:
            return 0.0
        return self._keyword.max_score(query)

    # -- filters ---------------------------------------------------------------

    def admitted(self, filters: Filters) -> NDArray[np.bool_]:
        """Which rows the filters admit: the dense and the keyword rankings both
        filter inside the search with this one mask."""
        return self._masks.get(
            filters,
            lambda: np.fromiter((filters.admits(p) for p in self._passages), bool, self.count()),
        )

    def _admitted_vectors(self, filters: Filters) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
        """The admitted rows and a contiguous copy of their vectors, for the last few
        filters used: gathering 18,000 transcript rows on every query doubled the
        time of a kind=transcript search."""

        def make() -> tuple[NDArray[np.intp], NDArray[np.float32]]:
            rows = np.flatnonzero(self.admitted(filters))
            return rows, np.ascontiguousarray(self._vectors[rows])

        return self._filtered.get(filters, make)

    # -- changes to the loaded copy -----------------------------------------------

    def add(
        self,
        passages: Sequence[Passage],
        vectors: NDArray[np.float32],
        sentence_vectors: Sequence[NDArray[np.float32]],
    ) -> None:
        counts = [len(s) for s in sentence_vectors]
        if len(passages) != len(vectors) or counts != [len(p.sentences) for p in passages]:
            raise ValueError("add: passages, vectors and sentence vectors disagree")
        start = int(self._sentences.shape[0])
        self._passages.extend(passages)
        self._vectors = np.vstack([self._vectors, np.asarray(vectors, dtype=np.float32)])
        if sentence_vectors:
            new = np.concatenate(sentence_vectors).astype(self._sentences.dtype)
            self._sentences = np.vstack([self._sentences, new])
        offsets = np.cumsum([0, *counts[:-1]], dtype=np.int64) + start
        self._starts = np.concatenate([self._starts, offsets]) if counts else self._starts
        self._changed()

    def drop_document(self, document_id: str) -> int:
        keep = np.array([p.document_id != document_id for p in self._passages], dtype=bool)
        dropped = int((~keep).sum())
        if not dropped:
            return 0
        rows = np.flatnonzero(keep)
        sentence_rows = np.concatenate(
            [
                np.arange(self._starts[r], self._starts[r] + len(self._passages[r].sentences))
                for r in rows
            ]
            or [np.zeros(0, dtype=np.int64)]
        )
        self._passages = [self._passages[r] for r in rows]
        self._vectors = self._vectors[rows]
        self._sentences = self._sentences[sentence_rows]
        counts = [len(p.sentences) for p in self._passages]
        self._starts = np.cumsum([0, *counts[:-1]], dtype=np.int64)[: len(counts)]
        self._changed()
        return dropped

    def _changed(self) -> None:
        """Rows moved: rebuild what is derived from them."""
        import faiss

        self._faiss = faiss.IndexFlatIP(self._vectors.shape[1])
        self._faiss.add(self._vectors)
        self._keyword = build_keyword_index(self._passages) if self._passages else None
        self._masks.clear()
        self._filtered.clear()
        self._last_bm25 = None
        self._by_document = None
