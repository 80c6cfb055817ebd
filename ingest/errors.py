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


class MediaError(DocumentError):
    """Audio, a feed or a download that cannot be used: ``where: reason``.

    ``where`` is a file or a URL; there is no line to name, so none is shown."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(where, 0, message)
        self.args = (f"{where}: {message}",)

    def __str__(self) -> str:
        return str(self.args[0])


class FetchError(MediaError):
    """A URL that could not be downloaded (unreachable, refused, not found)."""


class FeedError(MediaError):
    """A feed that cannot be read at all (not XML, not RSS or Atom)."""


class AudioError(MediaError):
    """Audio that cannot be transcribed: not audio, empty, silence only."""


class ModelError(PodciteError):
    """A speech-to-text model that cannot be loaded (a wrong PODCITE_WHISPER_MODEL_DIR)."""
