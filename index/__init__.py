"""index: passages -> embeddings -> an index; questions -> Hits and answers.

Public surface: ``build``, ``open_index``, ``search``, ``answer``, ``Filters``,
``Index`` (a loaded index over a ``SearchBackend``), and the embedder.  None of
these imports torch or FAISS until a model or an index is actually opened.
"""

from __future__ import annotations

from index.backend import Index, SearchBackend
from index.build import BuildReport, build
from index.embedder import Embedder, SentenceTransformerEmbedder
from index.open import open_index
from index.records import AnswerSentence, Filters, Hit
from index.search import answer, search

__all__ = [
    "AnswerSentence",
    "BuildReport",
    "Embedder",
    "Filters",
    "Hit",
    "Index",
    "SearchBackend",
    "SentenceTransformerEmbedder",
    "answer",
    "build",
    "open_index",
    "search",
]
