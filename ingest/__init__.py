"""ingest: documents -> sentences with times -> passages.

The public surface: ``parse(path) -> Document``, ``passages(doc) -> list[Passage]``,
``load(paths)`` for many files with their catalogs, and the records.
"""

from ingest.chunking import passages
from ingest.loader import Loaded, load, parse
from ingest.records import Document, Episode, ParseIssue, Passage, Section, Sentence, Time

__all__ = [
    "Document",
    "Episode",
    "Loaded",
    "ParseIssue",
    "Passage",
    "Section",
    "Sentence",
    "Time",
    "load",
    "parse",
    "passages",
]
