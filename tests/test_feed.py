"""Podcast feeds: feedparser on feeds written here, the download cache against a
local HTTP server (no network), and a whole feed of spoken episodes ingested,
indexed with the real embedder and asked."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest

from index.serial import passage_from_dict, passage_to_dict
from ingest import load
from ingest.errors import FeedError, FetchError
from ingest.feed import parse_feed
from ingest.fetch import Downloads
from ingest.podcast import Media
from ingest.records import Episode, Passage, Sentence, Time
from tests.conftest import free_port

RSS_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" '
    'xmlns:podcast="https://podcastindex.org/namespace/1.0">\n'
    "<channel>\n<title>Garden Talk</title>\n"
)


def rss(*items: str) -> bytes:
    return (RSS_HEAD + "\n".join(items) + "\n</channel>\n</rss>\n").encode()


def item(
    guid: str | None,
    title: str,
    extra: str = "",
    audio: str | None = "https://cdn.example.com/a.mp3",
) -> str:
    parts = [f"<item><title>{title}</title>"]
    if guid is not None:
        parts.append(f'<guid isPermaLink="false">{guid}</guid>')
    if audio is not None:
        parts.append(f'<enclosure url="{audio}" type="audio/mpeg" length="1000"/>')
    parts.append(extra + "</item>")
    return "".join(parts)


URL = "https://example.com/show/feed.xml"


# -- feedparser on feeds written here --------------------------------------------------


def test_items_episode_fields_and_podcasting_tags() -> None:
    feed = parse_feed(
        rss(
            item(
                "ep-1",
                "Tomatoes",
                "<pubDate>Tue, 02 Jan 2024 23:30:00 -0800</pubDate>"
                "<link>https://example.com/ep1</link><itunes:duration>1:02:03</itunes:duration>"
                "<itunes:episode>7</itunes:episode><itunes:season>2</itunes:season>"
                '<podcast:transcript url="https://example.com/ep1.html" type="text/html"/>'
                '<podcast:transcript url="https://example.com/ep1.vtt" type="text/vtt"/>'
                '<podcast:chapters url="https://example.com/ep1.json" '
                'type="application/json+chapters"/>',
                audio="https://cdn.example.com/ep1.mp3",
            )
        ),
        URL,
    )
    (it,) = feed.items
    assert feed.title == "Garden Talk" and not feed.dropped and not it.issues
    assert (it.guid, it.title, it.date, it.duration, it.number, it.season) == (
        "ep-1", "Tomatoes", "2024-01-02", 3723.0, 7, 2
    )  # fmt: skip
    assert it.page_url == "https://example.com/ep1"
    assert it.enclosure is not None and it.enclosure.url == "https://cdn.example.com/ep1.mp3"
    assert (it.enclosure.type, it.enclosure.length) == ("audio/mpeg", 1000)
    assert [t.type for t in it.transcripts] == ["text/html", "text/vtt"]  # both kept
    assert it.chapters is not None and it.chapters.url.endswith("ep1.json")


def test_dates_in_the_forms_rss_has_used() -> None:
    forms = {
        "Tue, 02 Jan 2024 10:00:00 GMT": "2024-01-02",
        "Tue, 2 Jan 2024 23:30:00 -0800": "2024-01-02",  # the publisher's day, not UTC's
        "02 Jan 2024 10:00 EST": "2024-01-02",
        "2024-01-02T10:00:00Z": "2024-01-02",
        "2024-01-02": "2024-01-02",
    }
    items = [item(f"g{n}", f"t{n}", f"<pubDate>{d}</pubDate>") for n, d in enumerate(forms)]
    bad = item("bad", "Bad date", "<pubDate>Tuesday the second of January</pubDate>")
    feed = parse_feed(rss(*items, bad), URL)
    assert [it.date for it in feed.items] == [*forms.values(), None]
    (issue,) = feed.items[-1].issues
    assert str(issue) == (
        f"{URL}:{issue.line}: item 'Bad date': unreadable date "
        "'Tuesday the second of January': indexed without a date"
    )
    assert issue.line == len(forms) + 5  # the item's own line in the feed


def test_edge_cases_each_say_what_and_where() -> None:
    feed = parse_feed(
        rss(
            item("a", "First"),
            item("a", "Same guid"),
            item("b", "No audio", audio=None),
            item(None, "No guid", audio="https://cdn.example.com/x.mp3"),
            item("c", "Relative", audio="../media/c.mp3"),
        ),
        URL,
    )
    assert [it.title for it in feed.items] == ["First", "No guid", "Relative"]
    assert [str(e) for e in feed.dropped] == [
        f"{URL}:6: item 'Same guid': duplicate guid 'a' (also item 'First')",
        f"{URL}:7: item 'No audio': no audio enclosure and no transcript",
    ]
    no_guid, relative = feed.items[1], feed.items[2]
    assert no_guid.guid == "https://cdn.example.com/x.mp3"
    assert "no guid: identified by https://cdn.example.com/x.mp3" in str(no_guid.issues[0])
    assert relative.enclosure is not None
    assert relative.enclosure.url == "https://example.com/media/c.mp3"
    assert str(relative.issues[0]) == (
        f"{URL}:9: item 'Relative': relative enclosure URL '../media/c.mp3' "
        "read as https://example.com/media/c.mp3"
    )


def test_not_a_feed_and_a_malformed_one() -> None:
    with pytest.raises(FeedError, match=r"^https://example.com/show/feed.xml: not an RSS or Atom"):
        parse_feed(b"this is not XML at all", URL)
    with pytest.raises(FeedError, match="not an RSS or Atom feed"):
        parse_feed(b"<html><body><p>Moved</p></body></html>", URL)
    lenient = parse_feed(rss(item("a", "Salt & pepper")), URL)  # a bare & : not XML
    assert [it.title for it in lenient.items] == ["Salt & pepper"]
    (issue,) = lenient.issues
    assert "not well-formed XML" in str(issue) and "read leniently" in str(issue)


YOUTUBE_ATOM = (
    b'<?xml version="1.0"?><feed xmlns:yt="http://www.youtube.com/xml/schemas/2015" '
    b'xmlns="http://www.w3.org/2005/Atom"><title>Huberman Lab</title>'
    b"<entry><id>yt:video:abcdefghijk</id><yt:videoId>abcdefghijk</yt:videoId>"
    b"<title>Cold exposure</title><published>2024-03-04T12:00:00+00:00</published>"
    b'<link rel="alternate" href="https://www.youtube.com/watch?v=abcdefghijk"/></entry></feed>'
)


def test_a_youtube_channel_feed_names_the_videos_of_transcripts(tmp_path: Path) -> None:
    (it,) = parse_feed(YOUTUBE_ATOM, "https://www.youtube.com/feeds/videos.xml?channel_id=X").items
    assert it.youtube_id == "abcdefghijk" and it.date == "2024-03-04"
    feed = tmp_path / "channel.atom"
    feed.write_bytes(YOUTUBE_ATOM)
    vtt = tmp_path / "Cold exposure [abcdefghijk].en.vtt"  # as yt-dlp names it
    vtt.write_text("WEBVTT\n\n00:01:23.400 --> 00:01:26.000\nCold water raises dopamine.\n")
    media = Media(cache_dir=tmp_path / "cache")
    out = load([vtt, feed], media=media)
    assert not out.errors and media.catalog_only == 1 and not media.transcripts
    (doc,) = out.documents
    assert doc.episode is not None and doc.episode.youtube
    assert (doc.title, doc.episode.date, doc.episode.channel) == (
        "Cold exposure", "2024-03-04", "Huberman Lab"
    )  # fmt: skip
    assert doc.episode.url_at(83.4) == "https://www.youtube.com/watch?v=abcdefghijk&t=83s"
    assert not doc.issues  # the catalog found it: no "no catalog entry" warning


def test_published_transcripts_in_every_format_and_a_bad_chapters_file(tmp_path: Path) -> None:
    (tmp_path / "one.json").write_text(
        json.dumps(
            {"version": "1.0.0", "segments": [
                {"speaker": "A", "startTime": 1.5, "endTime": 3.0, "body": "Salt is good."},
                {"speaker": "B", "startTime": 3.2, "endTime": 5.0, "body": "In small amounts."},
            ]}
        )
    )  # fmt: skip
    (tmp_path / "two.srt").write_text("1\n00:00:04,000 --> 00:00:06,000\nWater first.\n")
    (tmp_path / "three.html").write_text("<html><body><p>Sleep matters.</p></body></html>")
    (tmp_path / "chapters.json").write_text("{ not json")

    def tag(url: str, kind: str) -> str:
        return f'<podcast:transcript url="{url}" type="{kind}"/>'

    chapters = '<podcast:chapters url="chapters.json" type="application/json+chapters"/>'
    feed = tmp_path / "feed.rss"
    feed.write_bytes(
        rss(
            item("j", "Json", tag("one.json", "application/json") + chapters),
            item("s", "Srt", tag("gone.vtt", "text/vtt") + tag("two.srt", "application/srt")),
            item("h", "Html", tag("three.html", "text/html"), audio=None),
        )
    )
    media = Media(cache_dir=tmp_path / "cache")
    out = load([feed], media=media)
    assert not out.errors and not media.transcripts  # nothing was transcribed
    docs = {d.id: d for d in out.documents}
    one, two, three = docs["feed:j"], docs["feed:s"], docs["feed:h"]
    assert [(s.text, s.time) for s in one.sentences] == [
        ("Salt is good.", Time(1.5, True)),
        ("In small amounts.", Time(3.2, True)),
    ]
    assert [(s.text, s.time) for s in two.sentences] == [("Water first.", Time(4.0, True))]
    assert three.kind == "wiki" and [s.text for s in three.sentences] == ["Sleep matters."]
    assert all(s.time is None for s in three.sentences)  # text without times
    assert any("chapters" in i.message and "not a JSON chapters file" in i.message
               for i in one.issues)  # fmt: skip
    assert [s.trail for s in one.sections] == [()]
    gone = (tmp_path / "gone.vtt").as_uri()
    assert any(f"transcript {gone}: no such file; next one tried" in str(i) for i in two.issues)


# -- episode links and records ----------------------------------------------------------


def test_episode_links_and_records_round_trip() -> None:
    yt = Episode(id="abcdefghijk", title="t")
    assert yt.url_at(12.9) == "https://www.youtube.com/watch?v=abcdefghijk&t=12s"  # unchanged
    audio = Episode(id="g", title="t", audio_url="https://cdn.example.com/a.mp3", youtube=False)
    assert audio.url_at(23.93) == "https://cdn.example.com/a.mp3#t=23.9"
    assert audio.url_at(12) == "https://cdn.example.com/a.mp3#t=12"
    page = Episode(id="g", title="t", page_url="https://example.com/ep", youtube=False)
    assert page.url_at(5) == "https://example.com/ep"
    assert Episode(id="g", title="t", youtube=False).url_at(5) is None

    full = replace(audio, season=2, number=7, duration=3723.0, page_url="https://e.com/p")
    p = Passage(
        id="p", document_id="feed:g", document_title="t", kind="transcript", channel="c",
        episode=full, section=("Intro",), anchor=Time(1.0, True), transcribed="tiny.en",
        sentences=(Sentence(0, 3, "Hi.", Time(1.0, True), 2.0),),
    )  # fmt: skip
    assert passage_from_dict(json.loads(json.dumps(passage_to_dict(p)))) == p
    old = passage_to_dict(p)  # what an index written before feeds holds
    del old["transcribed"]
    old["episode"] = {"id": "abcdefghijk", "title": "t", "date": None, "channel": None,
                      "number": None}  # fmt: skip
    back = passage_from_dict(old)
    assert back.transcribed is None and back.episode == Episode(id="abcdefghijk", title="t")


# -- the download cache, against a local HTTP server --------------------------------------


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` with ETag, conditional GET and byte ranges; ``cut``
    names paths whose first response stops half way (a dropped connection)."""

    files: ClassVar[dict[str, bytes]] = {}
    cut: ClassVar[set[str]] = set()
    seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, **dict(self.headers)})
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        etag = f'"{len(body)}-{hash(body) & 0xFFFF}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.end_headers()
            return
        start = 0
        ranged = self.headers.get("Range")
        if ranged and self.headers.get("If-Range") == etag:
            start = int(ranged.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if self.path in self.cut:
            self.cut.discard(self.path)
            self.wfile.write(body[start : start + (len(body) - start) // 2])
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Files]]]:
    handler = type("Files", (_Files,), {"files": {}, "cut": set(), "seen": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_resumes_and_is_kept_by_url_and_hash(
    server: tuple[str, type[_Files]], tmp_path: Path
) -> None:
    base, files = server
    body = bytes(range(256)) * 4096  # 1 MiB
    files.files["/ep.mp3"] = body
    files.cut.add("/ep.mp3")
    downloads = Downloads(tmp_path / "dl")
    with pytest.raises(FetchError, match=r"/ep.mp3: download cut off at .* run again to resume"):
        downloads.fetch(f"{base}/ep.mp3")
    got = downloads.fetch(f"{base}/ep.mp3")
    assert got.path.read_bytes() == body and got.downloaded
    assert files.seen[-1]["Range"] == f"bytes={len(body) // 2}-"  # resumed, not restarted
    assert got.path.name == f"{got.sha256}.mp3"
    n = len(files.seen)
    assert downloads.fetch(f"{base}/ep.mp3").path == got.path and len(files.seen) == n
    again = downloads.fetch(f"{base}/ep.mp3", revalidate=True)  # a feed: asked, 304
    assert again.path == got.path and not again.downloaded and "If-None-Match" in files.seen[-1]


def test_unreachable_and_missing_urls_are_one_line(
    server: tuple[str, type[_Files]], tmp_path: Path
) -> None:
    base, _ = server
    downloads = Downloads(tmp_path / "dl")
    with pytest.raises(FetchError) as missing:
        downloads.fetch(f"{base}/gone.mp3")
    assert str(missing.value) == f"{base}/gone.mp3: HTTP 404 Not Found"
    closed = f"http://127.0.0.1:{free_port()}/ep.mp3"
    with pytest.raises(FetchError) as refused:
        downloads.fetch(closed)
    assert str(refused.value).startswith(f"{closed}: cannot download: ")
    assert "\n" not in str(refused.value) and "refused" in str(refused.value).lower()
    gone = (tmp_path / "nothing.mp3").as_uri()
    with pytest.raises(FetchError, match=f"^{gone}: no such file$"):
        downloads.fetch(gone)


def test_a_feed_read_offline_uses_its_cached_copy(
    server: tuple[str, type[_Files]], tmp_path: Path
) -> None:
    base, files = server
    files.files["/feed.xml"] = rss(item("a", "First", audio=None))
    media = Media(cache_dir=tmp_path / "cache")
    first = load([], feeds=[f"{base}/feed.xml"], media=media)
    assert [str(e) for e in first.errors] == [
        f"{base}/feed.xml:5: item 'First': no audio enclosure and no transcript"
    ]
    del files.files["/feed.xml"]  # the server now answers 404: use what we have, and say so
    stale = Downloads(tmp_path / "cache" / "downloads").fetch(f"{base}/feed.xml", revalidate=True)
    assert stale.stale == "HTTP 404 Not Found"
