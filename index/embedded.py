"""The embedded search backend: FAISS (dense) and bm25s (keyword) in this process.

It serves one index directory as ``index.store`` loaded it: passages read on
demand by row, their vectors memory-mapped, dense search exact or through an
HNSW graph by size (index/ann.py), sentence vectors, and the BM25 index.
Filters run inside the ranking: a mask of admitted rows, computed from the
row columns in a few vectorised comparisons (index/rows.py) and cached per
filter, scores only what the filter admits, so a filter never empties a list
that has matches further down (post-filtering a top-n would).

``add``/``drop_document`` change the loaded copy only; the index directory is
written by ``index.store`` alone (one owner of the format).  They read every
passage into memory and fall back to exact search: they are for small
indexes and tests, not for a million passages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from index import ann
from index.backend import LRU, Ranking
from index.carry import sentence_rows
from index.errors import IndexFormatError
from index.keyword import KeywordIndex, build_keyword_index
from index.records import Filters
from index.rows import Columns, columns_of
from index.tokens import TokenBits, sentences_of

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from index.store import Stored
    from ingest.records import Passage

_FILTER_MASKS = 16  # a bool a row each (and the rows of a narrow one): 16 MB at 10^6


class EmbeddedBackend:
    def __init__(self, stored: Stored) -> None:
        self._passages: Sequence[Passage] = stored.passages
        self._columns: Columns = stored.columns
        self._sentences = stored.sentence_vectors
        self._bits = stored.token_bits
        self._bit_starts = stored.token_starts
        self._dense = ann.Dense(stored.vectors, stored.faiss)
        self._keyword: KeywordIndex | None = stored.keyword
        self._masks: LRU[Filters, ann.Admitted] = LRU(_FILTER_MASKS)
        self._last_bm25: tuple[str, NDArray[np.float32]] | None = None

    # -- what it holds ---------------------------------------------------------

    @property
    def has_keyword(self) -> bool:
        return self._keyword is not None

    @property
    def dense_kind(self) -> str:
        """The dense search in use: "flat" (exact) or "hnsw"."""
        return self._dense.kind

    def count(self) -> int:
        return len(self._dense)

    def passage(self, row: int) -> Passage:
        return self._passages[row]

    def kinds(self, rows: Sequence[int]) -> list[tuple[str, str | None]]:
        c = self._columns  # rows.npy: no passage parsed
        return [
            (c.kinds[c.kind[r]], c.episodes[c.episode[r]] if c.episode[r] >= 0 else None)
            for r in rows
        ]

    def passages(self) -> Sequence[Passage]:
        """Every passage in row order (read on demand from a loaded index)."""
        return self._passages

    def document_rows(self, document_id: str) -> list[int]:
        return self._columns.document_rows(document_id)

    @property
    def vectors(self) -> NDArray[np.float32]:
        return self._dense.vectors

    def sentence_vectors(self, row: int) -> NDArray[np.float32]:
        a = int(self._columns.sentence_start[row])
        out: NDArray[np.float32] = self._sentences[
            a : a + int(self._columns.sentences[row])
        ].astype(np.float32)
        return out

    def token_bits(self, row: int) -> TokenBits | None:
        if self._bits is None or self._bit_starts is None:
            return None
        first, count = self._columns.sentence_start[row], self._columns.sentences[row]
        return sentences_of(self._bits, self._bit_starts, int(first), int(count))

    # -- dense -----------------------------------------------------------------

    def dense(self, q: NDArray[np.float32], n: int, filters: Filters) -> Ranking:
        q = np.asarray(q, dtype=np.float32)
        if not filters:
            return self._dense.search(q, n)
        if filters.episode:  # a few hundred rows, found without a pass over all
            return self._dense.search(
                q, n, ann.Admitted.of_rows(self._columns.episode_rows(filters))
            )
        return self._dense.search(q, n, self._admitted(filters))

    def cosines(self, q: NDArray[np.float32], rows: Sequence[int]) -> NDArray[np.float32]:
        if not rows:
            return np.zeros(0, dtype=np.float32)
        return ann.inner(self.vectors[list(rows)], q)

    # -- keyword ---------------------------------------------------------------

    def _bm25(self, query: str) -> NDArray[np.float32]:
        """Every row's BM25 score, for the last query asked (hybrid search asks
        for the top rows and then for the scores of the dense candidates)."""
        last = self._last_bm25
        if last is not None and last[0] == query:
            return last[1]
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
        # Only rows sharing a term with the question can rank (a few percent of
        # a large index): select among those, not over every row.
        rows = np.flatnonzero(scores > 0)
        if filters and rows.size:
            rows = rows[self.admitted(filters)[rows]]
        n = min(n, int(rows.size))
        if n == 0:
            return []
        sub = scores[rows]
        part = np.argpartition(-sub, n - 1)[:n] if n < sub.size else np.arange(sub.size)
        top = part[np.lexsort((rows[part], -sub[part]))]  # ties: the lower row first
        return [(int(rows[i]), float(sub[i])) for i in top]

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
        mask = self._admitted(filters).mask
        assert mask is not None  # of_mask keeps it
        return mask

    def _admitted(self, filters: Filters) -> ann.Admitted:
        return self._masks.get(
            filters, lambda: ann.Admitted.of_mask(self._columns.admitted(filters))
        )

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
        vecs = np.vstack([self.vectors, np.asarray(vectors, dtype=np.float32)])
        sents = self._sentences
        if sentence_vectors:
            new = np.concatenate(sentence_vectors).astype(self._sentences.dtype)
            sents = np.vstack([self._sentences, new])
        self._changed([*self._passages, *passages], vecs, sents)

    def drop_document(self, document_id: str) -> int:
        docs = self._columns.documents
        keep = self._columns.document != (docs.index(document_id) if document_id in docs else -1)
        dropped = int((~keep).sum())
        if not dropped:
            return 0
        rows = np.flatnonzero(keep)
        starts, counts = self._columns.sentence_start, self._columns.sentences
        sentences = self._sentences[sentence_rows(starts, counts, rows)]
        passages = [self._passages[int(r)] for r in rows]
        self._changed(passages, self.vectors[rows], sentences)
        return dropped

    def _changed(
        self,
        passages: list[Passage],
        vectors: NDArray[np.float32],
        sentences: NDArray[np.float16],
    ) -> None:
        """Rows moved: rebuild what is derived from them (exact dense search).
        Stored tokens are let go: the re-reading embeds its candidates again."""
        self._passages = passages
        self._bits = self._bit_starts = None
        self._columns = columns_of(passages)
        self._sentences = sentences
        self._dense = ann.Dense(np.ascontiguousarray(vectors, dtype=np.float32))
        self._keyword = build_keyword_index(passages) if passages else None
        self._masks.clear()
        self._last_bm25 = None
