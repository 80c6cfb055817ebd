"""The errors of the index and query side.

All derive from ``ingest.errors.PodciteError`` (a problem we can explain in one
sentence), so the edges translate every domain error the same way: the CLI
into one line and exit code 1, the server into a 4xx/5xx with a message.
Nothing in here knows about HTTP.
"""

from __future__ import annotations

from ingest.errors import PodciteError


class IndexMissingError(PodciteError):
    """No index at the given directory."""


class IndexFormatError(PodciteError):
    """An index directory that is incomplete, corrupt, or of another format version."""


class BuildError(PodciteError):
    """An index build that could not finish; the previous index is left in place."""


class MustParse(BuildError):
    """Documents left unparsed as unchanged cannot be carried over (the previous
    build failed verification, or is not theirs): the caller parses them and
    builds again."""


class QueryError(PodciteError):
    """A bad search request.  ``field`` names the parameter at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownEpisode(QueryError):
    """An episode filter naming no episode of the index (the API answers 404)."""
