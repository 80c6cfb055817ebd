"""Audio on this disk, served only from the folders it was ingested from.

An episode transcribed from a local file (or a feed's ``file://`` enclosure)
links to ``/audio/<its absolute path>``; the page's ``<audio>`` element plays
it from the cited second.  The server hands out a file only when, with every
``..`` and symlink resolved, it lies in a folder that holds audio of the
loaded index, and is itself an audio file: no other path on the disk can be
read through it (tests/test_podcast.py tries).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from index.backend import Index
from ingest.audio import AUDIO_SUFFIXES
from ingest.fetch import local_path

ROUTE = "/audio"


class AudioFolders:
    def __init__(self, folders: set[Path]) -> None:
        self.folders = folders

    @classmethod
    def of(cls, index: Index) -> AudioFolders:
        """The folders of the index's local audio (one passage per document says)."""
        folders: set[Path] = set()
        for doc_id in index.documents:
            rows = index.backend.document_rows(doc_id)
            episode = index.backend.passage(rows[0]).episode if rows else None
            if episode is not None and (episode.audio_url or "").startswith("file:"):
                assert episode.audio_url is not None
                folders.add(local_path(episode.audio_url).resolve().parent)
        return cls(folders)

    def playable(self, audio_url: str) -> str:
        """The URL a browser can play: a local file's route here, else the URL itself."""
        if not audio_url.startswith("file:"):
            return audio_url
        return ROUTE + quote(str(local_path(audio_url).resolve()))

    def file(self, path: str) -> Path | None:
        """The file ``/audio/<path>`` may serve, or None (anything outside the
        ingested folders, anything that is not audio, anything missing)."""
        try:
            target = Path("/", path).resolve(strict=True)
        except (OSError, RuntimeError, ValueError):
            return None
        inside = any(target.is_relative_to(folder) for folder in self.folders)
        if not inside or not target.is_file() or target.suffix.lower() not in AUDIO_SUFFIXES:
            return None
        return target
