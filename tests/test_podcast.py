"""A podcast as it comes: a local RSS file (relative and file:// URLs) whose
items are spoken here by espeak-ng, one with a published VTT transcript and
chapters, one with audio and chapters, one with audio only, and some broken
ones.  Ingested, indexed with the real embedder, and asked: the cited moment
is within 1.5 s of where the answer is said, in the right chapter."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from index import build, open_index, search
from ingest import load
from ingest.cues import Cue, vtt_text
from ingest.loader import Loaded
from ingest.podcast import Media
from tests.conftest import ROOT, free_port
from tests.speech import Spoken, speak_episode, tools_or_skip

TOMATOES = (
    "Welcome to Garden Talk, episode one.",
    "Tomatoes need six hours of direct sunlight every day.",
    "Now let us talk about compost.",
    "Good compost should feel as damp as a wrung out sponge.",
)
BEES = (
    "This is episode two, all about bees.",
    "A honey bee colony can hold sixty thousand workers.",
    "Now for the part about winter.",
    "In winter the bees cluster together to stay warm.",
)
MUSHROOMS = (
    "Mushrooms grow from thin white threads called mycelium.",
    "Oyster mushrooms taste best when fried in butter.",
)


@dataclass(frozen=True)
class Show:
    feed: Path
    tomatoes: Spoken
    bees: Spoken
    mushrooms: Spoken


def chapters(*marks: tuple[float, str]) -> str:
    return json.dumps(
        {"version": "1.2.0", "chapters": [{"startTime": t, "title": n} for t, n in marks]}
    )


@pytest.fixture(scope="module")
def show(tmp_path_factory: pytest.TempPathFactory) -> Show:
    tools_or_skip()
    root = tmp_path_factory.mktemp("show")
    (root / "audio").mkdir()
    tomatoes = speak_episode(TOMATOES, root / "audio" / "tomatoes.mp3", (1.0, 1.5, 1.2))
    bees = speak_episode(BEES, root / "audio" / "bees.ogg", (1.5, 2.0, 1.0))
    mushrooms = speak_episode(MUSHROOMS, root / "audio" / "mushrooms.wav", 1.5)
    # The publisher's transcript of episode one: its cues start where each sentence does.
    ends = [s - 0.3 for s in tomatoes.starts[1:]] + [tomatoes.seconds]
    cues = [Cue(s, e, t) for s, e, t in zip(tomatoes.starts, ends, TOMATOES, strict=True)]
    (root / "tomatoes.vtt").write_text(vtt_text(cues))
    compost = tomatoes.starts[2] - 0.3
    (root / "tomatoes.chapters.json").write_text(chapters((0, "Tomatoes"), (compost, "Compost")))
    winter = bees.starts[2] - 0.3
    (root / "bees.chapters.json").write_text(chapters((0, "The summer hive"), (winter, "Winter")))
    size = (root / "audio" / "tomatoes.mp3").stat().st_size
    feed = root / "feed.xml"
    feed.write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"
     xmlns:podcast="https://podcastindex.org/namespace/1.0">
<channel>
<title>Garden Talk</title>
<link>https://example.com/garden</link>
<item>
  <title>Tomatoes and compost</title>
  <guid isPermaLink="false">garden-1</guid>
  <pubDate>Tue, 02 Jan 2024 10:00:00 GMT</pubDate>
  <link>https://example.com/garden/1</link>
  <itunes:episode>1</itunes:episode>
  <enclosure url="audio/tomatoes.mp3" type="audio/mpeg" length="{size}"/>
  <podcast:transcript url="tomatoes.vtt" type="text/vtt"/>
  <podcast:chapters url="tomatoes.chapters.json" type="application/json+chapters"/>
</item>
<item>
  <title>Bees in summer and winter</title>
  <guid isPermaLink="false">garden-2</guid>
  <pubDate>2024-01-09</pubDate>
  <enclosure url="{(root / "audio" / "bees.ogg").as_uri()}" type="audio/ogg"/>
  <podcast:chapters url="bees.chapters.json" type="application/json+chapters"/>
</item>
<item>
  <title>Mushrooms</title>
  <guid isPermaLink="false">garden-3</guid>
  <pubDate>Tue, 16 Jan 2024 09:00:00 +0100</pubDate>
  <enclosure url="audio/mushrooms.wav" type="audio/wav"/>
</item>
<item>
  <title>Show notes only</title>
  <guid isPermaLink="false">garden-4</guid>
</item>
<item>
  <title>Tomatoes again</title>
  <guid isPermaLink="false">garden-1</guid>
  <enclosure url="audio/tomatoes.mp3" type="audio/mpeg"/>
</item>
<item>
  <title>Lost episode</title>
  <guid isPermaLink="false">garden-6</guid>
  <enclosure url="audio/lost.mp3" type="audio/mpeg"/>
</item>
</channel>
</rss>
"""
    )
    return Show(feed, tomatoes, bees, mushrooms)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def loaded(show: Show, cache: Path) -> tuple[Loaded, Media]:
    media = Media(cache_dir=cache)
    return load([], feeds=[show.feed.as_uri()], media=media), media


def test_items_become_documents_and_the_broken_ones_say_why(
    show: Show, loaded: tuple[Loaded, Media]
) -> None:
    out, media = loaded
    feed = str(show.feed)
    lines = show.feed.read_text().splitlines()

    def line(title: str) -> int:  # of the <item> whose title this is
        return next(n for n, text in enumerate(lines) if f"<title>{title}<" in text)

    lost = (show.feed.parent / "audio" / "lost.mp3").as_uri()
    assert sorted(str(e) for e in out.errors) == sorted(
        [
            f"{feed}:{line('Show notes only')}: item 'Show notes only': "
            "no audio enclosure and no transcript",
            f"{feed}:{line('Tomatoes again')}: item 'Tomatoes again': duplicate guid 'garden-1' "
            "(also item 'Tomatoes and compost')",
            f"{lost}: no such file ({feed}:{line('Lost episode')}: item 'Lost episode')",
        ]
    )
    docs = {d.id: d for d in out.documents}
    assert set(docs) == {"feed:garden-1", "feed:garden-2", "feed:garden-3"}
    one, two, three = docs["feed:garden-1"], docs["feed:garden-2"], docs["feed:garden-3"]
    # The publisher's transcript is used as it is, and its audio is not transcribed.
    assert one.transcribed is None and one.path == str(show.feed.parent / "tomatoes.vtt")
    assert two.transcribed == three.transcribed == "tiny.en"
    assert len(media.transcripts) == 2 and not any(t.cached for t in media.transcripts)
    assert [s.trail for s in one.sections] == [("Tomatoes",), ("Compost",)]
    assert [s.trail for s in two.sections] == [("The summer hive",), ("Winter",)]
    assert [s.trail for s in three.sections] == [()]
    ep = one.episode
    assert ep is not None and not ep.youtube
    assert (ep.id, ep.title, ep.date, ep.channel, ep.number) == (
        "garden-1", "Tomatoes and compost", "2024-01-02", "Garden Talk", 1
    )  # fmt: skip
    assert ep.audio_url == (show.feed.parent / "audio" / "tomatoes.mp3").as_uri()
    assert ep.page_url == "https://example.com/garden/1"
    assert three.episode is not None and three.episode.date == "2024-01-16"
    relative = [str(i) for i in one.issues if "relative" in i.message]
    assert relative[0] == (
        f"{feed}:{line('Tomatoes and compost')}: item 'Tomatoes and compost': "
        f"relative enclosure URL 'audio/tomatoes.mp3' read as {ep.audio_url}"
    )


@pytest.fixture(scope="module")
def index_dir(
    loaded: tuple[Loaded, Media], embedder: object, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("podcast-index") / "index"
    build(loaded[0].documents, out, embedder)  # type: ignore[arg-type]
    return out


def test_asked_the_cited_moment_is_when_it_is_said(
    show: Show, index_dir: Path, embedder: object
) -> None:
    idx = open_index(index_dir, embedder)  # type: ignore[arg-type]
    cases = [
        ("How do bees stay warm in winter?", "feed:garden-2", show.bees.starts[3], ("Winter",)),
        ("How many workers live in a honey bee colony?", "feed:garden-2",
         show.bees.starts[1], ("The summer hive",)),
        ("How should oyster mushrooms be cooked?", "feed:garden-3", show.mushrooms.starts[1], ()),
        ("How damp should compost be?", "feed:garden-1", show.tomatoes.starts[3], ("Compost",)),
    ]  # fmt: skip
    for question, doc_id, start, trail in cases:
        hit = search(idx, question, k=3)[0]
        assert hit.passage.document_id == doc_id, question
        assert hit.time is not None
        assert abs(hit.time.seconds - start) <= 1.5, (question, hit.sentence.text, start)
        assert hit.passage.section == trail, question
        ep = hit.passage.episode
        assert ep is not None and ep.url_at(hit.time.seconds) == (
            f"{ep.audio_url}#t={round(hit.time.seconds, 1):g}"
        )
        expected = None if doc_id == "feed:garden-1" else "tiny.en"
        assert hit.passage.transcribed == expected


def test_a_re_read_transcribes_nothing_and_embeds_nothing(
    show: Show, loaded: tuple[Loaded, Media], cache: Path, embedder: object, tmp_path: Path
) -> None:
    out, _ = loaded
    first = build(out.documents, tmp_path / "index", embedder)  # type: ignore[arg-type]
    media = Media(cache_dir=cache)
    again = load([], feeds=[show.feed.as_uri()], media=media)
    assert media.transcriber._model is None  # no model was loaded: every transcript cached
    assert len(media.transcripts) == 2 and all(t.cached for t in media.transcripts)
    assert [d.sentences for d in again.documents] == [d.sentences for d in out.documents]
    second = build(again.documents, tmp_path / "index", embedder)  # type: ignore[arg-type]
    assert first.embedded > 0 and second.embedded == 0 and second.reused == second.passages


@pytest.fixture(scope="module")
def client(index_dir: Path, embedder: object) -> Iterator[TestClient]:
    from server.app import create_app
    from server.settings import Settings

    idx = open_index(index_dir, embedder)  # type: ignore[arg-type]
    with TestClient(create_app(Settings(index_dir=index_dir), index=idx)) as c:
        yield c


def test_the_api_marks_machine_transcripts_and_links_the_audio(
    show: Show, client: TestClient
) -> None:
    body = client.get("/api/ask", params={"q": "How do bees stay warm in winter?"}).json()
    top = body["results"][0]
    assert top["transcribed"] == "tiny.en" and top["section"] == ["Winter"]
    bees = show.bees.path.resolve()
    assert top["audio"]["url"] == f"/audio{quote(str(bees))}"
    assert top["audio"]["type"] == "audio/ogg"
    start = top["timestamp"]["seconds"]
    assert abs(start - show.bees.starts[3]) <= 1.5 and top["audio"]["start"] == start
    assert top["url"] == f"/audio{quote(str(bees))}#t={round(start, 1):g}"
    assert body["answer"][0]["url"] == top["url"]
    vtt = client.get("/api/search", params={"q": "How damp should compost be?"}).json()
    assert vtt["results"][0]["transcribed"] is None  # the publisher's own transcript

    got = client.get(top["audio"]["url"], headers={"Range": "bytes=0-99"})
    assert got.status_code == 206 and got.content == bees.read_bytes()[:100]  # seekable


def test_the_page_plays_the_audio_from_the_cited_second(client: TestClient) -> None:
    html = client.get("/", params={"q": "How do bees stay warm in winter?"}).text
    m = re.search(r'<audio [^>]*preload="none" src="(/audio/[^"#]+)#t=([0-9.]+)"', html)
    assert m is not None
    api = client.get("/api/search", params={"q": "How do bees stay warm in winter?"}).json()
    assert float(m[2]) == round(api["results"][0]["timestamp"]["seconds"], 1)
    assert "transcribed · tiny.en" in html


def test_the_audio_route_serves_nothing_but_ingested_audio(show: Show, client: TestClient) -> None:
    audio = show.bees.path.resolve().parent
    assert client.get(f"/audio{quote(str(audio / 'tomatoes.mp3'))}").status_code == 200
    refused = [
        "/audio/etc/passwd",
        f"/audio{quote(str(audio))}/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        f"/audio{quote(str(audio))}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        f"/audio{quote(str(show.feed))}",  # in the show's folder, but not audio
        f"/audio{quote(str(audio))}/lost.mp3",  # not there
    ]
    for path in refused:
        r = client.get(path)
        assert r.status_code == 404, path
        assert "root:" not in r.text
    outside = show.feed.parent.parent / "elsewhere.mp3"  # audio, but no index's
    outside.write_bytes(show.tomatoes.path.read_bytes())
    assert client.get(f"/audio{quote(str(outside))}").status_code == 404
    link = audio / "link.mp3"  # a symlink out of the folder is followed, then refused
    link.symlink_to(outside)
    assert client.get(f"/audio{quote(str(link))}").status_code == 404


@pytest.mark.browser
def test_in_a_browser_the_player_opens_at_the_cited_second(browser: Any, index_dir: Path) -> None:
    """Debian's chromium against a real `podcite serve` over the show's index:
    the card's <audio> loads from the server and stands at the cited second."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--index", str(index_dir),
         "--port", str(port)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not _up(base):
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.5)
        page = browser.new_page()
        page.goto(base + "/?q=" + quote("How do bees stay warm in winter?"))
        player = page.locator("article.result audio").first
        src = player.get_attribute("src")
        assert src is not None and src.startswith("/audio/")
        at = float(src.rsplit("#t=", 1)[1])
        got = page.evaluate(
            """(a) => new Promise((done, fail) => {
                 a.addEventListener('loadedmetadata', () => done(a.currentTime));
                 a.addEventListener('error', () => fail(String(a.error && a.error.code)));
                 a.load();
               })""",
            player.element_handle(),
        )
        assert abs(got - at) < 0.05  # the media fragment put the player at the cited second
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _up(base: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{base}/healthz", timeout=2).json().get("status") == "ok"
    except httpx.HTTPError:
        return False


@pytest.mark.slow
def test_podcite_ingest_feed_prints_what_it_transcribed(show: Show, tmp_path: Path) -> None:
    index = tmp_path / "index"
    r = subprocess.run(
        [sys.executable, "-m", "server.cli", "ingest", "--feed", show.feed.as_uri(),
         "--index", str(index)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "indexed 3 documents" in r.stderr
    assert "transcribed 2 audio files" in r.stderr
    assert "real time" in r.stderr and "lost.mp3: no such file" in r.stderr
    assert sorted(p.suffix for p in (tmp_path / "index.cache" / "transcripts").glob("*.vtt")) == [
        ".vtt",
        ".vtt",
    ]
