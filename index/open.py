"""Opening an index for questions: the stored directory behind its search backend."""

from __future__ import annotations

from pathlib import Path

from index import store
from index.backend import Index
from index.embedded import EmbeddedBackend
from index.embedder import Embedder


def open_index(path: Path, embedder: Embedder | None = None, verify: bool = True) -> Index:
    """Load an index directory (checksums checked with ``verify``) behind the
    embedded FAISS + bm25s backend, with the embedder that encodes its questions
    (which must be the model the index was built with)."""
    if embedder is not None:
        store.check_manifest(Path(path), verify=False, model=embedder.name)
    stored = store.load(Path(path), verify=verify)
    return Index(EmbeddedBackend(stored), stored.manifest, embedder, stored.path)


def warm(index: Index) -> None:
    """Load the model and touch the query path before the first real question,
    so no user (or timed search) pays for it."""
    from index.search import search

    search(index, "warm up", 1)
    index.queries.clear()
