"""The search-backend seam: what podcite needs of a search engine, and the
loaded index that the query path, the server and the CLI hold.

``SearchBackend`` is the whole interface: add passages with their vectors,
dense top-k with filters, keyword top-k with filters, the scores of given rows
on either side (for fusion), a row's stored token vectors where it keeps them
(for the re-reading), count, and drop a document.  FAISS + bm25s over an
index directory (``index.embedded.EmbeddedBackend``) is the embedded default;
a distributed engine plugs in behind the same methods.  Rows are integers
that a backend assigns and keeps stable while it is loaded.

``Index`` is a backend plus what every backend shares: the manifest (model,
counts, documents), the embedder that encodes questions, and a small cache of
question vectors.  Typed fields, not a grab-bag: nothing outside this module
and the backend reaches into its state.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np

from index.embedder import Embedder, TokenVectors
from ingest.errors import PodciteError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from index.records import Filters
    from index.tokens import TokenBits
    from ingest.records import Passage

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
QUERY_CACHE = 512

Ranking = list[tuple[int, float]]  # (row, score), best first


class SearchBackend(Protocol):
    """What the query path needs of a search engine (docs/design.md)."""

    @property
    def has_keyword(self) -> bool:
        """Whether keyword (BM25) ranking is available."""

    def count(self) -> int:
        """How many passages it holds."""

    def passage(self, row: int) -> Passage:
        """The passage record of ``row`` (text, offsets, sentence times)."""

    def sentence_vectors(self, row: int) -> NDArray[np.float32]:
        """One normalised vector per sentence of ``row``'s passage."""

    def kinds(self, rows: Sequence[int]) -> list[tuple[str, str | None]]:
        """Each row's kind and episode id, read without its passage where the
        backend can (which rows could pair with a result: index/search.py)."""

    def token_bits(self, row: int) -> TokenBits | None:
        """``row``'s stored content-word token vectors (index/tokens.py), or
        None where the backend stores none: the re-reading then embeds the
        passage again (index/rerank.py)."""

    def document_rows(self, document_id: str) -> list[int]:
        """The rows of one document's passages, in document order (context around a hit)."""

    def dense(self, q: NDArray[np.float32], n: int, filters: Filters) -> Ranking:
        """The ``n`` admitted rows nearest ``q`` by inner product (cosine), best first."""

    def keyword(self, query: str, n: int, filters: Filters) -> Ranking:
        """The ``n`` admitted rows with the highest positive BM25 score, best first."""

    def cosines(self, q: NDArray[np.float32], rows: Sequence[int]) -> NDArray[np.float32]:
        """The cosine of each of ``rows`` with ``q``."""

    def keyword_scores(self, query: str, rows: Sequence[int]) -> NDArray[np.float32]:
        """The BM25 score of each of ``rows`` for ``query`` (0 where no term matches)."""

    def keyword_ceiling(self, query: str) -> float:
        """An upper bound on any row's BM25 score for ``query`` (weighted fusion)."""

    def add(
        self,
        passages: Sequence[Passage],
        vectors: NDArray[np.float32],
        sentence_vectors: Sequence[NDArray[np.float32]],
    ) -> None:
        """Add passages with their passage and sentence vectors."""

    def drop_document(self, document_id: str) -> int:
        """Remove every passage of a document; how many were removed."""


class LRU(Generic[K, V]):
    """A small least-recently-used cache (query vectors, filter masks)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, make: Callable[[], V]) -> V:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = self._items[key] = make()
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()


@dataclass
class Index:
    """A loaded index: one backend, its manifest, and the model for its questions."""

    backend: SearchBackend
    manifest: dict[str, Any]
    embedder: Embedder | None = None  # encodes questions; the model the manifest names
    path: Path | None = None  # the resolved build directory, for an embedded index
    queries: LRU[str, TokenVectors] = field(default_factory=lambda: LRU(QUERY_CACHE))

    @property
    def model(self) -> str:
        return str(self.manifest["model"]["name"])

    @property
    def dimension(self) -> int:
        return int(self.manifest["dimension"])

    @property
    def built_at(self) -> str | None:
        value = self.manifest.get("built_at")
        return str(value) if value is not None else None

    @cached_property
    def transcribed_episodes(self) -> frozenset[str]:
        """Episodes with a transcript in this index."""
        return frozenset(
            str(d["episode"])
            for d in self.documents.values()
            if d.get("kind") == "transcript" and d.get("episode")
        )

    @property
    def documents(self) -> dict[str, dict[str, Any]]:
        """Per document id: path, kind, title, episode id, passages (the manifest's list)."""
        docs: dict[str, dict[str, Any]] = self.manifest.get("documents", {})
        return docs

    def __len__(self) -> int:
        return self.backend.count()

    def embed(self, query: str) -> NDArray[np.float32]:
        """The question's vector, cached: the page, the answer and a repeated
        question share one embedding."""
        return self.question(query).sentence

    def question(self, query: str) -> TokenVectors:
        """The question after the model, cached: its vector (``embed``) and its
        tokens' vectors (what the re-reading reads, index/rerank.py), from one
        forward pass."""

        def make() -> TokenVectors:
            if self.embedder is None:
                raise PodciteError("this index was opened without an embedder")
            return self.embedder.token_vectors([query])[0]

        return self.queries.get(query, make)


def rows_of(ranking: Ranking) -> list[int]:
    return [r for r, _ in ranking]


def as_float32(x: NDArray[Any]) -> NDArray[np.float32]:
    return np.asarray(x, dtype=np.float32)
