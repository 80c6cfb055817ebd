"""Podcast feeds (RSS 2.0, Atom) -> items: the episode, its audio, its published texts.

feedparser reads the feed (it survives the malformed XML feeds are often
written in, and knows the iTunes tags and every date form RSS has used).  It
keeps only the last of repeated tags, though, and a Podcasting 2.0 item may
offer several ``<podcast:transcript>``s, so those tags (and
``<podcast:chapters>``, ``<podcast:season>``, ``<podcast:episode>``) are read
with ElementTree from the same bytes and matched to feedparser's entries by
position.  Nothing here touches the network: the caller fetches the bytes
(ingest/fetch.py) and, later, the URLs an item names (ingest/podcast.py).

Every problem is said once, naming the feed and the item's line: items with
nothing to index or a duplicate guid are dropped (``Feed.dropped``), the rest
(a relative URL resolved, a date that cannot be read) stay with the item.
"""

from __future__ import annotations

import re

# ElementTree resolves no external entities, and CPython 3.11's expat (>= 2.4.1)
# refuses billion-laughs expansion: safe for untrusted feeds (docs/reliability.md).
import xml.etree.ElementTree as ET  # nosec B405
from dataclasses import dataclass, field
from datetime import date
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urljoin, urlsplit

from ingest.audio import AUDIO_SUFFIXES
from ingest.errors import FeedError, MediaError
from ingest.records import ParseIssue

FEED_SUFFIXES = frozenset({".rss", ".atom", ".xml"})
_PODCAST_NS = "podcastindex.org/namespace/1.0"
_ITEM_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s/>]")
_DURATION = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d+)?)$")


@dataclass(frozen=True, slots=True)
class Link:
    url: str
    type: str | None = None
    length: int | None = None  # bytes, as the feed states it (often wrong or 0)
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Item:
    guid: str
    title: str
    line: int  # of the item's start tag in the feed, for messages
    date: str | None = None  # ISO date
    duration: float | None = None
    number: int | None = None
    season: int | None = None
    page_url: str | None = None
    enclosure: Link | None = None  # the audio
    transcripts: tuple[Link, ...] = ()
    chapters: Link | None = None
    youtube_id: str | None = None
    issues: tuple[ParseIssue, ...] = ()


@dataclass
class Feed:
    url: str
    where: str  # the URL, or the file's path for a local feed (for messages)
    title: str
    items: list[Item] = field(default_factory=list)
    dropped: list[MediaError] = field(default_factory=list)  # items with nothing to index
    issues: list[ParseIssue] = field(default_factory=list)  # about the feed as a whole


def looks_like_feed(head: bytes) -> bool:
    """A sniff for folders: an ``.xml`` file there is taken only if it is a feed."""
    return bool(re.search(rb"<(?:rss|feed|rdf:RDF)[\s>]", head[:4096]))


def parse_feed(data: bytes, url: str, where: str | None = None) -> Feed:
    """Items of the feed whose bytes are ``data`` and whose own URL is ``url``
    (relative URLs in it are resolved against that)."""
    import feedparser

    where = where or url
    parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception")
        detail = f": {reason}" if reason else ""
        raise FeedError(where, f"not an RSS or Atom feed (not a feed's XML{detail})")
    feed = Feed(url, where, str(parsed.feed.get("title") or where).strip())
    tags = _podcast_tags(data)
    if parsed.get("bozo") and parsed.entries:
        lost = "" if tags is not None else "; its Podcasting 2.0 tags are not read"
        problem = f"not well-formed XML ({parsed.bozo_exception}): read leniently{lost}"
        feed.issues.append(ParseIssue(where, 0, problem))
    if tags is not None and len(tags) != len(parsed.entries):
        feed.issues.append(
            ParseIssue(where, 0, "items could not be matched to their Podcasting 2.0 tags: ignored")
        )
        tags = None
    starts = [m.start() for m in _ITEM_START.finditer(data)]
    seen: dict[str, str] = {}
    for k, entry in enumerate(parsed.entries):
        line = data.count(b"\n", 0, starts[k]) + 1 if k < len(starts) else 0
        own = tags[k] if tags is not None else {}
        item = _item(entry, own, url, where, line)
        if item.guid in seen:
            feed.dropped.append(
                MediaError(
                    f"{where}:{line}",
                    f"item {item.title!r}: duplicate guid {item.guid!r} "
                    f"(also item {seen[item.guid]!r})",
                )
            )
            continue
        seen[item.guid] = item.title
        if item.enclosure is None and not item.transcripts and item.youtube_id is None:
            feed.dropped.append(
                MediaError(
                    f"{where}:{line}",
                    f"item {item.title!r}: no audio enclosure and no transcript",
                )
            )
            continue
        feed.items.append(item)
    return feed


def _item(entry: Any, tags: dict[str, Any], url: str, where: str, line: int) -> Item:
    issues: list[ParseIssue] = []
    title = " ".join(str(entry.get("title") or "").split())

    def note(message: str) -> None:
        issues.append(ParseIssue(where, line, f"item {title or '(untitled)'!r}: {message}"))

    def resolve(href: str, what: str) -> str:
        href = href.strip()
        if "://" in href:
            return href
        full = urljoin(url, href)
        note(f"relative {what} URL {href!r} read as {full}")
        return full

    enclosure = _enclosure(entry, resolve, note)
    transcripts = tuple(
        Link(resolve(t["url"], "transcript"), t.get("type"), None, t.get("language"))
        for t in tags.get("transcripts", ())
        if t.get("url")
    )
    chapters = tags.get("chapters")
    chapter_link = (
        Link(resolve(chapters["url"], "chapters"), chapters.get("type"))
        if chapters and chapters.get("url")
        else None
    )
    youtube_id = entry.get("yt_videoid") or None
    page = entry.get("link")
    if entry.get("guidislink") and not str(page).startswith(("http://", "https://")):
        page = None  # feedparser took a guid such as "ep-12" for the item's link
    page_url = urljoin(url, page) if page else None
    guid = str(entry.get("id") or "").strip()
    if not guid:
        guid = youtube_id or (enclosure.url if enclosure else None) or page_url or ""
        if guid:
            note(f"no guid: identified by {guid}")
        else:
            guid = f"{url}#{title}"
            note("no guid, enclosure or link: identified by its title")
    return Item(
        guid=guid,
        title=title or PurePosixPath(urlsplit(guid).path).stem or guid,
        line=line,
        date=_date(entry, note),
        duration=_duration(entry.get("itunes_duration"), note),
        number=_number(tags.get("episode") or entry.get("itunes_episode"), "episode", note),
        season=_number(tags.get("season") or entry.get("itunes_season"), "season", note),
        page_url=page_url,
        enclosure=enclosure,
        transcripts=transcripts,
        chapters=chapter_link,
        youtube_id=youtube_id,
        issues=tuple(issues),
    )


def _enclosure(entry: Any, resolve: Any, note: Any) -> Link | None:
    for enc in entry.get("enclosures", ()):
        href = enc.get("href") or enc.get("url")
        if not href:
            note("an enclosure without a URL: ignored")
            continue
        kind = (enc.get("type") or "").lower()
        suffix = PurePosixPath(urlsplit(href).path).suffix.lower()
        if kind.startswith(("audio/", "video/")) or suffix in AUDIO_SUFFIXES:
            length = str(enc.get("length") or "").strip()
            size = int(length) if length.isdigit() and int(length) > 0 else None
            return Link(resolve(href, "enclosure"), kind or None, size)
    return None


def _date(entry: Any, note: Any) -> str | None:
    # dict.get: feedparser's own get() maps "updated" to "published" with a warning.
    raw = dict.get(entry, "published") or dict.get(entry, "updated")
    if not raw:
        return None
    try:  # RFC 822 keeps the publisher's own day (feedparser's is in UTC)
        return parsedate_to_datetime(raw).date().isoformat()
    except (TypeError, ValueError, IndexError):
        pass
    parsed = dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed")
    if parsed:
        return date(parsed[0], parsed[1], parsed[2]).isoformat()
    note(f"unreadable date {raw!r}: indexed without a date")
    return None


def _duration(raw: Any, note: Any) -> float | None:
    """``1:02:03``, ``62:03``, ``3723`` or ``3723.5`` -> seconds."""
    if raw is None or not str(raw).strip():
        return None
    m = _DURATION.match(str(raw).strip())
    if not m:
        note(f"unreadable duration {raw!r}: ignored")
        return None
    a, b, c = m.groups()
    parts = [float(x) for x in (a, b, c) if x is not None]
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def _number(raw: Any, what: str, note: Any) -> int | None:
    if raw is None or not str(raw).strip():
        return None
    text = str(raw).strip()
    if not text.isdigit():
        note(f"unreadable {what} number {text!r}: ignored")
        return None
    return int(text)


def _podcast_tags(data: bytes) -> list[dict[str, Any]] | None:
    """Per item, in order, its Podcasting 2.0 tags; None where the XML is not
    well-formed (feedparser's lenient reading then stands alone)."""
    try:
        root = ET.fromstring(data)  # nosec B314: see the import
    except ET.ParseError:
        return None
    items = [el for el in root.iter() if _local(el.tag) in ("item", "entry")]
    out: list[dict[str, Any]] = []
    for item in items:
        tags: dict[str, Any] = {"transcripts": []}
        for el in item:
            if _PODCAST_NS not in el.tag:
                continue
            name = _local(el.tag)
            if name == "transcript":
                tags["transcripts"].append(dict(el.attrib))
            elif name == "chapters" and "chapters" not in tags:
                tags["chapters"] = dict(el.attrib)
            elif name in ("season", "episode"):
                tags[name] = (el.text or "").strip()
        out.append(tags)
    return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""
