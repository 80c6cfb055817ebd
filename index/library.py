"""What the library holds: its episodes (title, date, number, length) and totals.

A build writes one ``episodes`` list into the manifest (``episode_entries``);
an index built before that has none, and ``episodes`` then reads the same
facts off the passages (one transcript passage per document is enough for its
length).  An episode's length is the end of its transcript's last sentence;
the build knows no length for an episode without a transcript.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from index.backend import Index
    from ingest.records import Document, Episode, Passage


@dataclass(frozen=True, slots=True)
class EpisodeInfo:
    id: str
    title: str
    date: str | None = None
    number: int | None = None
    duration: float | None = None  # seconds: its transcript's end (None: no transcript)
    transcript: bool = False


@dataclass(frozen=True, slots=True)
class Library:
    episodes: list[EpisodeInfo]  # newest first, undated last
    documents: int
    wiki_pages: int
    transcripts: int
    transcript_seconds: float
    first_date: str | None
    last_date: str | None
    built_at: str | None

    def durations(self) -> dict[str, float | None]:
        return {e.id: e.duration for e in self.episodes}


def _entry(ep: Episode, duration: float | None, transcript: bool) -> dict[str, Any]:
    return {
        "id": ep.id,
        "title": ep.title,
        "date": ep.date,
        "number": ep.number,
        "duration": round(duration, 3) if duration is not None else None,
        "transcript": transcript,
    }


def _merge(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per episode id; a transcript's length wins over none."""
    by: dict[str, dict[str, Any]] = {}
    for e in entries:
        have = by.get(e["id"])
        if have is None or (e["transcript"] and not have["transcript"]):
            by[e["id"]] = e
    return list(by.values())


def _end(sentences: Sequence[Any]) -> float | None:
    return sentences[-1].end_time if sentences else None


def episode_entries(
    documents: Sequence[Document], kept: Iterable[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """The manifest's ``episodes`` list (index/build.py writes it): this build's
    documents' episodes, and ``kept`` entries of the previous build's manifest
    for the documents an incremental build carries over."""
    return _merge(
        chain(
            (
                _entry(
                    d.episode,
                    _end(d.sentences) if d.kind == "transcript" else None,
                    d.kind == "transcript",
                )
                for d in documents
                if d.episode is not None
            ),
            kept,
        )
    )


def _scan(index: Index) -> list[dict[str, Any]]:
    """An older index: the same entries from each document's first and last passage."""
    entries = []
    for doc_id, doc in index.documents.items():
        if not doc.get("episode"):
            continue
        rows = index.backend.document_rows(doc_id)
        if not rows:
            continue
        first: Passage = index.backend.passage(rows[0])
        if first.episode is None:
            continue
        transcript = first.kind == "transcript"
        end = _end(index.backend.passage(rows[-1]).sentences) if transcript else None
        entries.append(_entry(first.episode, end, transcript))
    return _merge(entries)


def _info(e: dict[str, Any]) -> EpisodeInfo:
    number = e.get("number")
    duration = e.get("duration")
    return EpisodeInfo(
        id=str(e["id"]),
        title=str(e.get("title") or e["id"]),
        date=e.get("date"),
        number=int(number) if number is not None else None,
        duration=float(duration) if duration is not None else None,
        transcript=bool(e.get("transcript")),
    )


def episodes(index: Index) -> list[EpisodeInfo]:
    """Every episode of the library, newest first (undated last)."""
    raw = index.manifest.get("episodes")
    infos = [_info(e) for e in (raw if isinstance(raw, list) else _scan(index))]
    dated = sorted((e for e in infos if e.date), key=lambda e: (e.date or "", e.id), reverse=True)
    return dated + sorted((e for e in infos if not e.date), key=lambda e: e.title.lower())


def library(index: Index) -> Library:
    eps = episodes(index)
    kinds = [str(d.get("kind")) for d in index.documents.values()]
    dates = sorted(e.date for e in eps if e.date)
    return Library(
        episodes=eps,
        documents=len(kinds),
        wiki_pages=kinds.count("wiki"),
        transcripts=kinds.count("transcript"),
        transcript_seconds=sum(e.duration or 0.0 for e in eps if e.transcript),
        first_date=dates[0] if dates else None,
        last_date=dates[-1] if dates else None,
        built_at=index.built_at,
    )


def kept_entries(manifest: dict[str, Any] | None, kept: Sequence[str]) -> list[dict[str, Any]]:
    """A previous build's ``manifest`` episode entries of the documents ``kept``
    (carried over by a rebuild), for ``episode_entries``."""
    if manifest is None or not kept:
        return []
    ids = {manifest["documents"][d].get("episode") for d in kept}
    return [e for e in manifest.get("episodes", []) if e.get("id") in ids]
