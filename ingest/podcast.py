"""Feeds and audio files -> transcript Documents, through the one transcript path.

For each feed item (ingest/feed.py) the publisher's own text is used when
the feed offers one (``<podcast:transcript>``: VTT, SRT, the JSON format,
HTML or plain text), so nothing is transcribed that was transcribed already;
otherwise the audio is fetched and transcribed (ingest/audio.py).  Either way
the result is a WebVTT or SRT file on disk that ``parse_transcript`` reads
like any other, so sentences, windows and the citation check never know
where a transcript came from; only ``Document.transcribed`` says a machine
made it.  ``<podcast:chapters>`` become the sections of the transcript, so
every window carries the title of the chapter it lies in.

Audio files among ``podcite ingest``'s paths take the same way.  One bad item
or file is one error; the rest are indexed.
"""

from __future__ import annotations

import html
import json
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ingest import wiki
from ingest.audio import TranscribeProgress, Transcriber, Transcript
from ingest.catalog import Catalog, file_key
from ingest.cues import Cue as VttCue
from ingest.cues import vtt_text
from ingest.errors import DocumentError, FetchError, MediaError
from ingest.feed import Feed, Item, Link, parse_feed
from ingest.fetch import DownloadProgress, Downloads, Fetched, copy_into, local_path, to_url
from ingest.lines import read_text
from ingest.records import Document, Episode, ParseIssue, Section, Sentence
from ingest.transcript import parse_transcript

# A sentence this close before a chapter's start is taken to open it: machine
# word times run late or early by a few tenths of a second.
CHAPTER_SLACK_S = 0.5


def cache_dir_for(index_dir: Path) -> Path:
    """Downloads and transcripts live beside the index: ``data/index`` -> ``data/index.cache``."""
    index_dir = Path(index_dir)
    return index_dir.parent / f"{index_dir.name}.cache"


@dataclass
class Media:
    """What feeds and audio need: a cache folder, a transcriber, progress callbacks."""

    cache_dir: Path = Path("data/index.cache")
    transcriber: Transcriber = field(default_factory=Transcriber)
    on_download: DownloadProgress | None = None
    on_transcribe: TranscribeProgress | None = None
    transcripts: list[Transcript] = field(default_factory=list)  # made or reused this run
    catalog_only: int = 0  # feed items (a YouTube channel's) that only name an episode

    @property
    def downloads(self) -> Downloads:
        return Downloads(self.cache_dir / "downloads", self.on_download)

    def transcribe(self, audio: Path, sha256: str, where: str) -> Transcript:
        t = self.transcriber.transcribe(
            audio, sha256, self.cache_dir, where=where, progress=self.on_transcribe
        )
        self.transcripts.append(t)
        return t


# -- audio files ----------------------------------------------------------------------


def audio_document(path: Path, doc_id: str, media: Media, catalog: Catalog) -> Document:
    """A local audio file, transcribed (or its transcript taken from the cache)."""
    fetched = media.downloads.fetch(path.resolve().as_uri())
    t = media.transcribe(path, fetched.sha256, str(path))
    known = catalog.for_file(path)  # a catalog may name the audio's episode (YouTube)
    episode = known or Episode(
        id=f"audio:{fetched.sha256[:16]}",
        title=t.title or path.stem,
        duration=round(t.audio_seconds, 3) or None,
        audio_url=path.resolve().as_uri(),
        youtube=False,
    )
    doc = _transcript_document(t.vtt, doc_id, episode, t.model)
    issues = tuple(ParseIssue(str(path), 0, i) for i in t.issues)
    return replace(doc, issues=issues + doc.issues)


# -- feeds ----------------------------------------------------------------------------


@dataclass
class FeedLoaded:
    documents: list[Document] = field(default_factory=list)
    errors: list[DocumentError] = field(default_factory=list)
    catalog: Catalog = field(default_factory=Catalog)


@dataclass
class ReadFeed:
    """A feed fetched and parsed: its episodes are known (a catalog), its items'
    transcripts and audio not yet fetched."""

    feed: Feed | None
    catalog: Catalog = field(default_factory=Catalog)
    errors: list[DocumentError] = field(default_factory=list)
    issues: list[ParseIssue] = field(default_factory=list)  # about the feed as a whole


def read_feed(source: str, media: Media) -> ReadFeed:
    """The feed at ``source`` (URL or path), fetched (revalidated) and parsed."""
    url = to_url(source)
    where = str(local_path(url)) if url.startswith("file:") else url
    try:
        fetched = media.downloads.fetch(url, revalidate=True)
        feed = parse_feed(fetched.path.read_bytes(), url, where)
    except (MediaError, OSError) as exc:
        error = exc if isinstance(exc, MediaError) else FetchError(where, str(exc))
        return ReadFeed(None, errors=[error])
    out = ReadFeed(feed, errors=list(feed.dropped), issues=list(feed.issues))
    if fetched.stale:
        out.issues.append(
            ParseIssue(
                where, 0, f"offline ({fetched.stale}): read the copy cached earlier", note=True
            )
        )
    for item in feed.items:
        out.catalog.add(_episode(feed, item))
    return out


def feed_documents(read: ReadFeed, media: Media) -> FeedLoaded:
    """Every item of a read feed that has something to index, as a document."""
    out = FeedLoaded(errors=list(read.errors), catalog=read.catalog)
    if read.feed is None:
        return out
    feed_issues = list(read.issues)
    for item in read.feed.items:
        episode = _episode(read.feed, item)
        if item.enclosure is None and not item.transcripts:
            # A YouTube channel's item: its transcript comes from elsewhere, and
            # the catalog now names its episode (Catalog.for_file).
            media.catalog_only += 1
            continue
        try:
            doc = _item_document(read.feed, item, episode, media)
        except DocumentError as exc:
            out.errors.append(exc)
            continue
        # The feed's own warnings go with its first document (a build lists them once).
        issues = (*feed_issues, *item.issues, *doc.issues)
        feed_issues = []
        out.documents.append(replace(doc, issues=tuple(issues)))
    # No document to carry them: the feed's warnings are said as errors instead.
    out.errors.extend(MediaError(i.path, i.message) for i in feed_issues)
    return out


def _episode(feed: Feed, item: Item) -> Episode:
    enc = item.enclosure
    return Episode(
        id=item.youtube_id or item.guid,
        title=item.title,
        date=item.date,
        channel=feed.title,
        number=item.number,
        season=item.season,
        duration=item.duration,
        audio_url=enc.url if enc else None,
        audio_type=enc.type if enc else None,
        page_url=item.page_url,
        youtube=item.youtube_id is not None,
    )


def _item_document(feed: Feed, item: Item, episode: Episode, media: Media) -> Document:
    doc_id = f"feed:{episode.id}"
    label = f"{feed.where}:{item.line}: item {item.title!r}"
    issues: list[ParseIssue] = []
    doc: Document | None = None
    for link in sorted(item.transcripts, key=_transcript_rank):
        try:
            doc = _published_transcript(link, doc_id, episode, media)
            break
        except DocumentError as exc:
            issues.append(ParseIssue(feed.where, item.line, f"transcript {exc}; next one tried"))
    if doc is None:
        if item.enclosure is None:
            raise MediaError(label, "no transcript could be read and there is no audio")
        try:
            doc = _transcribed(item.enclosure, doc_id, episode, media)
        except MediaError as exc:  # the URL or file first, then which item it was
            raise type(exc)(exc.path, f"{exc.message} ({label})") from None
    if item.chapters is not None and doc.kind == "transcript":
        try:
            chapters, chapter_issues = read_chapters(media.downloads.fetch(item.chapters.url))
            doc = with_chapters(doc, chapters)
            issues.extend(ParseIssue(feed.where, item.line, m) for m in chapter_issues)
        except MediaError as exc:
            issues.append(ParseIssue(feed.where, item.line, f"chapters {exc}: none used"))
    return replace(doc, issues=(*doc.issues, *issues))


def _transcribed(enc: Link, doc_id: str, episode: Episode, media: Media) -> Document:
    """The enclosure's transcript: from the cache by the audio's content hash
    (a remote file's hash is on record, so it is not even downloaded again),
    else downloaded and transcribed, and the download deleted afterwards."""
    downloads = media.downloads
    record = downloads.record(enc.url)
    if record is not None:
        cached = media.transcriber.cached(record["sha256"], media.cache_dir)
        if cached is not None:
            media.transcripts.append(cached)
            return _audio_transcript(cached, doc_id, episode, enc.url)
    fetched = downloads.fetch(enc.url)
    where = str(fetched.path) if fetched.local else enc.url
    t = media.transcribe(fetched.path, fetched.sha256, where)
    if not fetched.local:
        downloads.forget_content(enc.url)
    extra = []
    if enc.length and fetched.size < enc.length * 0.99:
        extra.append(f"shorter than the feed says: {fetched.size:,} of {enc.length:,} bytes")
    return _audio_transcript(t, doc_id, episode, where, extra)


def _audio_transcript(
    t: Transcript, doc_id: str, episode: Episode, where: str, extra: Sequence[str] = ()
) -> Document:
    doc = _transcript_document(t.vtt, doc_id, episode, t.model)
    said = (*(ParseIssue(where, 0, i) for i in (*extra, *t.issues)),)
    return replace(doc, issues=(*said, *doc.issues))


_KINDS = (
    ("vtt", ("text/vtt",), (".vtt",)),
    ("srt", ("application/x-subrip", "application/srt", "text/srt"), (".srt",)),
    ("json", ("application/json",), (".json",)),
    ("html", ("text/html",), (".html", ".htm")),
    ("txt", ("text/plain",), (".txt",)),
)


def _transcript_kind(link: Link) -> str | None:
    kind = (link.type or "").lower().split(";")[0].strip()
    suffix = Path(link.url.split("?")[0]).suffix.lower()
    for name, types, suffixes in _KINDS:
        if kind in types or (not kind and suffix in suffixes):
            return name
    return None


def _transcript_rank(link: Link) -> int:
    """Timed formats first: a VTT beats the same words as HTML."""
    kind = _transcript_kind(link)
    return [k[0] for k in _KINDS].index(kind) if kind else len(_KINDS)


def _published_transcript(link: Link, doc_id: str, episode: Episode, media: Media) -> Document:
    kind = _transcript_kind(link)
    if kind is None:
        raise MediaError(link.url, f"unknown transcript type {link.type!r}")
    fetched = media.downloads.fetch(link.url)
    as_file = media.cache_dir / "transcripts" / f"{fetched.sha256}.{kind}"
    if kind in ("vtt", "srt"):
        path = fetched.path
        if path.suffix.lower() != f".{kind}":  # the parser goes by the suffix
            copy_into(path, as_file)
            path = as_file
        return _transcript_document(path, doc_id, episode, None)
    if kind == "json":
        vtt = as_file.with_suffix(".json.vtt")
        if not vtt.is_file():
            vtt.parent.mkdir(parents=True, exist_ok=True)
            vtt.write_text(json_transcript_vtt(fetched), encoding="utf-8")
        return _transcript_document(vtt, doc_id, episode, None)
    txt = as_file.with_suffix(f".{kind}.txt")
    if not txt.is_file():
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_text(_plain_text(fetched, kind == "html"), encoding="utf-8")
    text, sha = read_text(txt)
    # Text without times: read as a page (paragraphs), cited without a moment.
    doc = wiki.parse_text(txt, doc_id, text, sha, _catalog_for(txt, episode))
    return replace(doc, title=episode.title, channel=episode.channel, episode=episode)


def _transcript_document(
    path: Path, doc_id: str, episode: Episode, transcribed: str | None
) -> Document:
    text, _ = read_text(path)
    doc = parse_transcript(path, doc_id, text, _catalog_for(path, episode))
    return replace(doc, title=episode.title, transcribed=transcribed)


def _catalog_for(path: Path, episode: Episode) -> Catalog:
    catalog = Catalog()
    catalog.add(episode)
    catalog.by_file[file_key(path.name)] = episode.id
    return catalog


def json_transcript_vtt(fetched: Fetched) -> str:
    """The Podcasting 2.0 JSON transcript (``segments`` of ``startTime``,
    ``endTime``, ``body``) as WebVTT, one cue per segment."""
    where = fetched.url
    try:
        data = json.loads(fetched.path.read_bytes())
    except (OSError, ValueError) as exc:
        raise MediaError(where, f"not a JSON transcript: {exc}") from None
    segments = data.get("segments") if isinstance(data, dict) else None
    if not isinstance(segments, list):
        raise MediaError(where, "a JSON transcript needs a 'segments' list")
    cues = []
    for seg in segments:
        if not isinstance(seg, dict):
            continue
        start, end, body = seg.get("startTime"), seg.get("endTime"), seg.get("body")
        if isinstance(start, int | float) and isinstance(body, str) and body.strip():
            stop = end if isinstance(end, int | float) and end >= start else start
            cues.append(VttCue(float(start), float(stop), body.strip()))
    if not cues:
        raise MediaError(where, "a JSON transcript without a timed segment")
    return vtt_text(cues, f"Converted by podcite from the JSON transcript at {where}.")


def _plain_text(fetched: Fetched, is_html: bool) -> str:
    raw = fetched.path.read_bytes().decode("utf-8", errors="replace")
    if not is_html:
        return raw
    raw = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", raw)
    raw = re.sub(r"(?i)<\s*(br|/p|/div|/h\d|/li)\b[^>]*>", "\n\n", raw)
    return html.unescape(re.sub(r"<[^>]+>", " ", raw))


# -- chapters -------------------------------------------------------------------------


def read_chapters(fetched: Fetched) -> tuple[list[tuple[float, str]], list[str]]:
    """The JSON chapters file's (start, title) pairs in time order, and what was wrong."""
    where = fetched.url
    try:
        data: Any = json.loads(fetched.path.read_bytes())
    except (OSError, ValueError) as exc:
        raise MediaError(where, f"not a JSON chapters file: {exc}") from None
    items = data.get("chapters") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise MediaError(where, "a chapters file needs a 'chapters' list")
    chapters: list[tuple[float, str]] = []
    problems: list[str] = []
    for n, ch in enumerate(items, 1):
        start = ch.get("startTime") if isinstance(ch, dict) else None
        title = ch.get("title") if isinstance(ch, dict) else None
        if not isinstance(start, int | float) or not isinstance(title, str) or not title.strip():
            problems.append(f"chapters {where}: chapter {n} has no startTime or title: ignored")
            continue
        if ch.get("toc") is False:  # a marker, not an entry of the table of contents
            continue
        chapters.append((float(start), " ".join(title.split())))
    return sorted(chapters), problems


def with_chapters(doc: Document, chapters: Sequence[tuple[float, str]]) -> Document:
    """The transcript cut into one section per chapter, trail ``(title,)``;
    sentences before the first chapter keep the empty trail."""
    if not chapters:
        return doc
    starts = [start - CHAPTER_SLACK_S for start, _ in chapters]
    sections: list[Section] = []
    run: list[Sentence] = []
    current = -2
    for s in doc.sentences:
        at = bisect_right(starts, s.time.seconds) - 1 if s.time is not None else current
        if at != current and run:
            sections.append(_section(chapters, current, run))
            run = []
        current = at
        run.append(s)
    if run:
        sections.append(_section(chapters, current, run))
    return replace(doc, sections=tuple(sections))


def _section(chapters: Sequence[tuple[float, str]], at: int, run: list[Sentence]) -> Section:
    return Section(trail=(chapters[at][1],) if at >= 0 else (), sentences=tuple(run))
