"""Episode catalogs: which episode a document belongs to, when it does not say.

A catalog is read from a CSV by the names in its header, so the project's
``corpus/catalog.csv`` and the shared ``transcripts.csv`` / ``episodes.csv`` all
work, and from a wiki channel page (``### [Title](https://youtube...)`` headings
followed by the topic pages of that episode).  Front matter in a document wins
over any catalog.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

from ingest.errors import DocumentError
from ingest.records import Episode

_ID_COLUMNS = ("youtube_id", "video_id", "videoid", "episode_id")
_TITLE_COLUMNS = ("title", "episode_title", "video_title")
_DATE_COLUMNS = ("date", "date_published", "published")
_NUMBER_COLUMNS = ("episode_number", "number")
_CHANNEL_COLUMNS = ("channel",)
_FILE_COLUMNS = ("file", "document", "path", "whisper_vtt_file", "filename")

# Episode fields a later source may fill when the earlier one left them empty.
_FILLABLE = tuple(
    name for name in Episode.__dataclass_fields__ if name not in ("id", "title", "youtube")
)

_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_BRACKETED_ID = re.compile(r"\[([A-Za-z0-9_-]{11})\]")
_CHANNEL_HEADING = re.compile(
    r"^#{2,4}\s*\[(?P<title>.+)\]\(https?://(?:www\.)?(?:youtube\.com/watch\?v=|youtu\.be/)"
    r"(?P<id>[A-Za-z0-9_-]{11})[^)]*\)\s*$"
)
_CHANNEL_ITEM = re.compile(r"^\s*[-*]\s*\[\[(?P<slug>[^|\]]+?)\s*(?:\|[^\]]*)?\]\]")


def file_key(name: str) -> str:
    """Normalise a file name for matching: NFC, case-folded, no directories."""
    return unicodedata.normalize("NFKC", Path(name).name).casefold()


@dataclass
class Catalog:
    episodes: dict[str, Episode] = field(default_factory=dict)
    by_file: dict[str, str] = field(default_factory=dict)  # file_key -> episode id
    by_slug: dict[str, str] = field(default_factory=dict)  # wiki page slug -> episode id

    def add(self, episode: Episode) -> None:
        """Merge, keeping what is known: a later source fills gaps, never blanks."""
        old = self.episodes.get(episode.id)
        if old is None:
            self.episodes[episode.id] = episode
            return
        gaps = {
            name: getattr(episode, name)
            for name in _FILLABLE
            if getattr(old, name) is None and getattr(episode, name) is not None
        }
        if not old.title or old.title == old.id:
            gaps["title"] = episode.title
        self.episodes[episode.id] = replace(old, **gaps)

    def merge(self, other: Catalog) -> None:
        for e in other.episodes.values():
            self.add(e)
        self.by_file.update(other.by_file)
        self.by_slug.update(other.by_slug)

    def episode(self, episode_id: str | None) -> Episode | None:
        return self.episodes.get(episode_id) if episode_id else None

    def for_file(self, path: Path) -> Episode | None:
        ep_id = self.by_file.get(file_key(path.name)) or self.by_slug.get(path.stem)
        if ep_id is None:  # yt-dlp's naming, "Title [VIDEOID].en.vtt", for a known video
            m = _BRACKETED_ID.search(path.name)
            ep_id = m[1] if m and m[1] in self.episodes else None
        return self.episode(ep_id)

    def __len__(self) -> int:
        return len(self.episodes)


def _pick(row: dict[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = row.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def read_csv(path: Path) -> Catalog:
    """Read a catalog CSV.  Needs a YouTube id column; the rest is optional."""
    catalog = Catalog()
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip().lower() for h in reader.fieldnames or []]
        reader.fieldnames = header
        if not any(c in header for c in _ID_COLUMNS):
            raise DocumentError(
                str(path), 1, f"catalog header needs one of {', '.join(_ID_COLUMNS)}"
            )
        for row in reader:
            line = reader.line_num
            ep_id = _pick(row, _ID_COLUMNS)
            if ep_id is None:
                continue
            if not _YOUTUBE_ID.match(ep_id):
                raise DocumentError(str(path), line, f"not a YouTube video id: {ep_id!r}")
            number = _pick(row, _NUMBER_COLUMNS)
            catalog.add(
                Episode(
                    id=ep_id,
                    title=_pick(row, _TITLE_COLUMNS) or ep_id,
                    date=_pick(row, _DATE_COLUMNS),
                    channel=_pick(row, _CHANNEL_COLUMNS),
                    number=int(number) if number and number.isdigit() else None,
                )
            )
            doc = _pick(row, _FILE_COLUMNS)
            if doc:
                catalog.by_file[file_key(doc)] = ep_id
    return catalog


def is_channel_page(text: str) -> bool:
    return sum(1 for line in text.splitlines() if _CHANNEL_HEADING.match(line)) >= 1


def read_channel_page(path: Path, text: str) -> Catalog:
    """A wiki channel page: each episode heading with the topic pages under it."""
    catalog = Catalog()
    channel = path.stem
    current: str | None = None
    for line in text.splitlines():
        m = _CHANNEL_HEADING.match(line)
        if m:
            current = m["id"]
            catalog.add(Episode(id=current, title=m["title"].strip(), channel=channel))
            continue
        item = _CHANNEL_ITEM.match(line)
        if item and current:
            catalog.by_slug.setdefault(item["slug"].strip(), current)
    return catalog
