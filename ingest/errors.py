"""Every domain error podcite raises, in one place.

The edges translate them: the CLI into a one-line message and an exit code,
the server into a 4xx/5xx with a message.  Nothing in here knows about HTTP.
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


class IndexMissingError(PodciteError):
    """No index at the given directory."""


class IndexFormatError(PodciteError):
    """An index directory that is incomplete, corrupt, or of another format version."""


class BuildError(PodciteError):
    """An index build that could not finish; the previous index is left in place."""


class QueryError(PodciteError):
    """A bad search request.  ``field`` names the parameter at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
