"""index: passages -> embeddings -> an index directory; queries -> Hits.

Public surface: ``build``, ``open_index``, ``search``, ``answer``, ``Filters``.
"""

from __future__ import annotations

from pathlib import Path

from index.build import BuildReport, build
from index.embedder import Embedder, SentenceTransformerEmbedder
from index.search import AnswerSentence, Filters, answer, search
from index.store import Index


def open_index(path: Path, embedder: Embedder | None = None, verify: bool = True) -> Index:
    """Load an index and attach the embedder that encodes its queries."""
    from index import store

    return store.load(Path(path), verify=verify, embedder=embedder)


__all__ = [
    "AnswerSentence",
    "BuildReport",
    "Embedder",
    "Filters",
    "Index",
    "SentenceTransformerEmbedder",
    "answer",
    "build",
    "open_index",
    "search",
]
