"""Domain errors: the base class, and the errors of reading documents.

The document side's errors, and the base class of every domain error (the
index and query side's are in ``index/errors.py``).  The edges translate
them: the CLI into a one-line message and an exit code, the server into a
4xx/5xx with a message.  Nothing in here knows about HTTP.
"""

from __future__ import annotations


class PodciteError(Exception):
    """Base class: a problem we can explain to the user in one sentence."""


class DocumentError(PodciteError):
    """A document that cannot be read at all (as opposed to a ParseIssue we work around)."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


class UnsupportedDocument(DocumentError):
    """A file whose kind podcite does not ingest."""
