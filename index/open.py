"""Opening an index for questions: the stored directory behind its search backend."""

from __future__ import annotations

from pathlib import Path

from index import ann, store
from index.backend import Index
from index.embedded import EmbeddedBackend
from index.embedder import Embedder


def open_index(
    path: Path,
    embedder: Embedder | None = None,
    verify: store.Verify = True,
    ann_mode: ann.Mode = "auto",
) -> Index:
    """Load an index directory (checked as ``verify`` says: index/store/)
    behind the embedded FAISS + bm25s backend, with the embedder that encodes
    its questions (which must be the model the index was built with).

    ``ann_mode`` (PODCITE_ANN): ``auto`` searches with what the directory holds
    (an HNSW graph from ``index.ann.HNSW_FROM`` passages on, else exact);
    ``flat`` always exactly; ``hnsw`` through a graph, built in memory at
    start-up when the directory has none (seconds at 10^4 passages, long at 10^6)."""
    model = embedder.name if embedder is not None else None
    stored = store.load(Path(path), verify=verify, graph=ann_mode != "flat", model=model)
    if ann_mode == "hnsw" and stored.faiss is None:
        stored.faiss = ann.build(stored.vectors)
    return Index(EmbeddedBackend(stored), stored.manifest, embedder, stored.path)


def warm(index: Index) -> None:
    """Load the model and touch the query path before the first real question,
    so no user (or timed search) pays for it."""
    from index.search import search

    search(index, "warm up", 1)
    index.queries.clear()
