"""Dense search by size: exact inner product below ``HNSW_FROM`` passages, a
FAISS HNSW graph from there on (docs/benchmarks.md, "Index by size and 1M
passages", measured the threshold and the parameters).

- Exact (``flat``): one pass over the memory-mapped vectors (``faiss.knn``
  reads the array in place; nothing is copied into an index).  Right up to
  ~10^5 passages: a few milliseconds, and exact.
- HNSW (``IndexHNSWSQ``: a graph whose nodes hold 8-bit scalar-quantised
  codes, inner product): written into the index directory by ``index.store``
  (``ann.faiss``) and read into memory (at 10^6 passages, 0.65 GB against the
  1.8 GB of a graph holding float32 vectors).  The walk's candidates (its whole
  beam, ``EF_SEARCH``) are re-ranked by their exact cosines from the
  memory-mapped vectors, so the scores handed back are exact.

Filters stay inside the ranking (index/embedded.py): the admitted rows are a
mask, and a filter that admits few rows (an episode: a few hundred) is ranked
exactly over those rows, while a broad one (a kind, a date range) searches the
graph with the mask as a FAISS ``IDSelectorBitmap`` and a wider beam, so a
filter never empties a list that has matches further down.

Which to use is a setting (``PODCITE_ANN``: auto, flat, hnsw; ``choose``):
``auto`` builds the graph from ``HNSW_FROM`` passages on and searches with
whatever the directory holds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

Mode = Literal["auto", "flat", "hnsw"]
MODES: tuple[Mode, ...] = get_args(Mode)
Ranking = list[tuple[int, float]]

# Measured (bench/ann.py, docs/benchmarks.md "Index by size and 1M passages"):
# at 10k passages the exact scan and the graph cost the same (0.6 / 0.5 ms);
# at 32k (the whole shared library) the scan is 1.9 ms against 0.6 ms, the
# hybrid search 4.6 ms against 2.8 ms, with the same hybrid top 10 for all 200
# questions (dense recall@10 0.993); at 100k, 11 ms against 1 ms.
HNSW_FROM = 20_000
M = 32  # neighbours a node: recall 0.99+ at 10^6 where 16 gave less (docs/benchmarks.md)
EF_CONSTRUCTION = 100
EF_SEARCH = 512  # recall@10 at 10^6: 0.950 with 256, 0.975 with 512 (~1.5 ms more)
RERANK = 2  # candidates re-ranked exactly: twice the rows asked for
# A filter admitting at most this many rows is ranked exactly over them
# (gathering a few thousand rows, ~12 MB, is cheaper than a filtered graph walk,
# and exact); more go through the graph with the filter as an IDSelector.
EXACT_ROWS = 8192
MAX_EF = 1024  # the filtered beam: 2 x EF_SEARCH / admitted fraction, at most this
_BUILD_BATCH = 50_000
_TRAIN = 100_000  # rows that set the 8-bit quantiser's ranges


def choose(n: int, mode: Mode) -> Literal["flat", "hnsw"]:
    """What a build of ``n`` passages writes: the graph under ``hnsw``, or
    under ``auto`` from ``HNSW_FROM`` passages on."""
    if mode == "hnsw" or (mode == "auto" and n >= HNSW_FROM):
        return "hnsw"
    return "flat"


def build(vectors: NDArray[np.float32], threads: int | None = None) -> Any:
    """An HNSW graph over ``vectors`` (L2-normalised rows: inner product is the
    cosine) whose nodes hold 8-bit scalar-quantised codes (a quarter of the
    float32 vectors: the graph walk reads memory, not disk), added in batches
    so a memory-mapped array is never copied whole.  Searches re-rank the
    walk's candidates with the exact vectors (``Dense``)."""
    import faiss

    before = faiss.omp_get_max_threads()
    if threads is not None:
        faiss.omp_set_num_threads(threads)
    try:
        n, d = vectors.shape
        qt8 = faiss.ScalarQuantizer.QT_8bit
        index = faiss.IndexHNSWSQ(int(d), qt8, M, faiss.METRIC_INNER_PRODUCT)  # type: ignore[arg-type]  # faiss's stub
        index.hnsw.efConstruction = EF_CONSTRUCTION
        index.hnsw.efSearch = EF_SEARCH
        step = max(1, n // _TRAIN)  # the quantiser's ranges, from a sample of rows
        index.train(np.ascontiguousarray(vectors[::step], dtype=np.float32))
        for a in range(0, n, _BUILD_BATCH):
            index.add(np.ascontiguousarray(vectors[a : a + _BUILD_BATCH], dtype=np.float32))
    finally:
        faiss.omp_set_num_threads(before)
    return index


def write(index: Any, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def read(path: Path) -> Any:
    """The graph and its codes, read into memory: a walk touches thousands of
    nodes, and memory-mapped they cost a disk read each until cached (1,858
    page faults a question from a cold cache at 10^6 passages)."""
    import faiss

    index: Any = faiss.read_index(str(path))
    index.hnsw.efSearch = EF_SEARCH
    return index


@dataclass(frozen=True)
class Admitted:
    """The rows a filter admits: a mask over every row, their ascending list
    (kept where an exact ranking gathers them: a narrow filter), and how many."""

    mask: NDArray[np.bool_] | None
    rows: NDArray[np.intp] | None
    count: int

    @classmethod
    def of_mask(cls, mask: NDArray[np.bool_]) -> Admitted:
        count = int(np.count_nonzero(mask))
        narrow = count <= EXACT_ROWS or count * 4 < mask.size
        return cls(mask, np.flatnonzero(mask) if narrow else None, count)

    @classmethod
    def of_rows(cls, rows: NDArray[np.intp]) -> Admitted:
        return cls(None, rows, int(rows.size))

    def bitmask(self, n: int) -> NDArray[np.bool_]:
        if self.mask is not None:
            return self.mask
        mask = np.zeros(n, dtype=bool)
        mask[self.rows] = True
        return mask


class Dense:
    """Top-n rows by inner product, exactly or through an HNSW graph, with the
    filter rules of the module docstring."""

    def __init__(self, vectors: NDArray[np.float32], graph: Any = None) -> None:
        self.vectors = vectors
        self.graph = graph
        self._bitmaps: dict[int, tuple[NDArray[np.bool_], Any, Any]] = {}
        self._lock = threading.Lock()

    @property
    def kind(self) -> Literal["flat", "hnsw"]:
        return "flat" if self.graph is None else "hnsw"

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def search(self, q: NDArray[np.float32], n: int, admitted: Admitted | None = None) -> Ranking:
        """The ``n`` best rows for ``q`` among ``admitted`` (all rows when None)."""
        n = min(n, len(self))
        if n <= 0:
            return []
        if admitted is None:
            return self._graph(q, n) if self.graph is not None else self._all(q, n)
        if admitted.count == 0:
            return []
        if self.graph is not None and admitted.count > EXACT_ROWS:
            mask = admitted.bitmask(len(self))
            return self._graph(q, min(n, admitted.count), mask, admitted.count / len(self))
        if admitted.rows is None:  # broad filter, exact: scan everything, mask the rest
            return self._all(q, n, admitted.bitmask(len(self)))
        return exact(self.vectors, q, n, admitted.rows)

    def _all(
        self, q: NDArray[np.float32], n: int, admitted: NDArray[np.bool_] | None = None
    ) -> Ranking:
        if admitted is None:
            import faiss

            found, ids = faiss.knn(q[None, :], self.vectors, n, faiss.METRIC_INNER_PRODUCT)
            return [(int(i), float(s)) for i, s in zip(ids[0], found[0], strict=True) if i >= 0]
        scores = inner(self.vectors, q)
        scores[~admitted] = -np.inf
        return _top(scores, min(n, int(np.count_nonzero(admitted))))

    def _graph(
        self,
        q: NDArray[np.float32],
        n: int,
        admitted: NDArray[np.bool_] | None = None,
        fraction: float = 1.0,
    ) -> Ranking:
        import faiss

        # A filtered walk keeps only admitted nodes in its beam: widen it by the
        # admitted fraction, and twice that (a kind filter at 10^6 passages:
        # recall@10 0.943 with the beam / fraction, ~0.97 with twice it).
        ef = EF_SEARCH if fraction >= 1 else min(2 * max(EF_SEARCH, n) / fraction, MAX_EF)
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # not in faiss's stub
        params.efSearch = int(max(ef, n))
        if admitted is not None:
            params.sel = self._selector(admitted)
        # The beam's best RERANK x n nodes by their codes, re-ranked by their
        # exact cosines (the codes are 8-bit; at 10^5 re-ranking lifted recall@10
        # from 0.984 to 0.995, docs/benchmarks.md).
        want = min(params.efSearch, max(RERANK * n, 64))
        _, ids = self.graph.search(q[None, :].astype(np.float32), want, params=params)
        found = np.unique(ids[0][ids[0] >= 0])  # ascending: a forward read of the vectors
        return exact(self.vectors, q, n, found)

    def _selector(self, admitted: NDArray[np.bool_]) -> Any:
        """An IDSelectorBitmap over ``admitted``; the bitmap array must outlive
        the selector, so both are kept (for the last few masks: callers cache
        their masks, so the same array comes back)."""
        import faiss

        key = id(admitted)
        with self._lock:
            held = self._bitmaps.get(key)
            if held is not None and held[0] is admitted:
                return held[2]
        bits = np.packbits(admitted, bitorder="little")
        sel = faiss.IDSelectorBitmap(admitted.size, faiss.swig_ptr(bits))
        with self._lock:
            if len(self._bitmaps) >= 16:
                self._bitmaps.pop(next(iter(self._bitmaps)))
            self._bitmaps[key] = (admitted, bits, sel)
        return sel


def exact(
    vectors: NDArray[np.float32], q: NDArray[np.float32], n: int, rows: NDArray[np.intp]
) -> Ranking:
    """The ``n`` best of ``rows`` by inner product (rows ascending: a sequential
    read of the memory-mapped vectors)."""
    scores = inner(vectors[rows], q)
    return [(int(rows[t]), s) for t, s in _top(scores, min(n, rows.size))]


def inner(vectors: NDArray[np.float32], q: NDArray[np.float32]) -> NDArray[np.float32]:
    """``vectors @ q`` by FAISS's single-threaded SIMD loop.  NumPy's matrix-vector
    product goes to OpenBLAS, whose threads fight for the cores under load:
    32,286 rows took 17-20 ms p50 on this 2-core machine at load 9 against
    2 ms single-threaded (docs/benchmarks.md)."""
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    y = np.ascontiguousarray(q, dtype=np.float32)
    out = np.empty(x.shape[0], dtype=np.float32)
    if out.size:
        faiss.fvec_inner_products_ny(  # type: ignore[attr-defined]  # not in faiss's stub
            faiss.swig_ptr(out), faiss.swig_ptr(y), faiss.swig_ptr(x), x.shape[1], x.shape[0]
        )
    return out


def _top(scores: NDArray[np.float32], n: int) -> Ranking:
    if n <= 0:
        return []
    part = np.argpartition(-scores, n - 1)[:n] if n < scores.size else np.arange(scores.size)
    order = part[np.argsort(-scores[part], kind="stable")]
    return [(int(i), float(scores[i])) for i in order]


def recall_at(found: list[int], truth: list[int], k: int = 10) -> float:
    """The share of the exact top ``k`` that an approximate top ``k`` found."""
    want = set(truth[:k])
    return len(want & set(found[:k])) / len(want) if want else 1.0
