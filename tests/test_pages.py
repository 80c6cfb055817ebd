"""The page's building blocks: pure decisions on hand-made records, then the
page, /api/timeline and /api/episodes through the real app over a small
library with transcripts (tests/ui_corpus.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from index.library import EpisodeInfo, Library
from index.records import Hit
from index.timeline import Mark, chapters, episodes_of, extent, marks, within
from ingest.records import Episode, Passage, Sentence, Time
from server.app import create_app
from server.pages import citation, relevance, resolve_episode
from server.schemas import DocumentOut, EpisodeOut, ResultOut, SourceOut, TimestampOut
from server.settings import Settings
from tests import ui_corpus

EP = Episode("abc", "An episode", "2021-01-02", number=7)


def passage(t: float, section: tuple[str, ...] = (), ep: Episode | None = EP) -> Passage:
    s = Sentence(int(t), int(t) + 5, f"said at {t}", Time(t, True), end_time=t + 30)
    return Passage(f"p{t}", "d.vtt", "D", "transcript", None, ep, section, (s,), s.time)


def hit(t: float, score: float, ep: Episode | None = EP) -> Hit:
    return Hit(passage(t, ep=ep), score, 0)


def test_marks_keep_those_above_the_threshold_once_per_second() -> None:
    found = marks([hit(90, 0.6), hit(30, 0.4), hit(90.5, 0.7), hit(10, 0.55)], 0.51)
    assert found == [Mark(10, 0.55, True), Mark(90, 0.7, True)]


def test_strip_length_and_marks_past_the_end() -> None:
    assert extent(600.0, []) == (600.0, True)
    length, known = extent(None, [Mark(100, 0.6, True)])
    assert not known and length >= 100
    assert within([Mark(100, 0.6, True), Mark(700, 0.6, True)], 600.0, True) == [
        Mark(100, 0.6, True)
    ]


def test_chapters_from_section_trails_and_episode_order() -> None:
    ps = [passage(0, ("Intro",)), passage(30, ("Intro",)), passage(60, ("Sleep",)), passage(90)]
    assert [(c.title, c.seconds) for c in chapters(ps)] == [("Intro", 0), ("Sleep", 60)]
    other = Episode("xyz", "Other")
    assert [e.id for e in episodes_of([hit(1, 0.9, other), hit(2, 0.8), hit(3, 0.7, other)])] == [
        "xyz",
        "abc",
    ]


def result(**kw: Any) -> ResultOut:
    base: dict[str, Any] = dict(
        id="x",
        rank=1,
        score=-0.09,
        kind="transcript",
        text="t",
        sentence="It rhymes.",
        document=DocumentOut(id="a/b.vtt", title="Doc"),
        episode=EpisodeOut(id="abc", title="An episode", date="2021-01-02"),
        section=[],
        timestamp=TimestampOut(seconds=83, label="0:01:23", exact=True),
        url="https://www.youtube.com/watch?v=abc&t=83s",
        links=[],
        source=SourceOut(path="a/b.vtt", start=0, end=1, line=1),
    )
    return ResultOut(**(base | kw))


def test_citation_text_and_relevance() -> None:
    assert citation(result()) == (
        "\u201cIt rhymes.\u201d \u2014 An episode (2021-01-02), 0:01:23, "
        "https://www.youtube.com/watch?v=abc&t=83s"
    )
    approx = TimestampOut(seconds=83, label="0:01:23", exact=False)
    assert citation(result(episode=None, timestamp=approx, url=None)) == (
        "\u201cIt rhymes.\u201d \u2014 Doc, \u22480:01:23"
    )
    assert relevance(-0.092) == 0 and relevance(0.634) == 63 and relevance(1.2) == 100


def test_episode_field_takes_id_title_or_number() -> None:
    info = EpisodeInfo("abc", "An episode", "2021-01-02", 7, 60.0, True)
    lib = Library([info], 1, 0, 1, 60.0, None, None, None)
    for typed in ("abc", "An episode", "#7", "7", "#7 An episode (2021-01-02)"):
        assert resolve_episode(typed, lib) == "abc"
    assert resolve_episode("nope", lib) == "nope" and resolve_episode("", lib) == ""


@pytest.fixture(scope="module")
def client(ui_index, ui_index_dir: Path):  # type: ignore[no-untyped-def]
    app = create_app(Settings(index_dir=ui_index_dir), index=ui_index)
    with TestClient(app) as c:
        yield c


def test_manifest_lists_episodes_and_api_episodes(client: TestClient, ui_index) -> None:  # type: ignore[no-untyped-def]
    entries = {e["id"]: e for e in ui_index.manifest["episodes"]}
    assert entries[ui_corpus.OTHER]["duration"] == ui_corpus.duration("sleep-episode.vtt")
    body = client.get("/api/episodes").json()
    assert [e["id"] for e in body["episodes"]] == [
        ui_corpus.EPISODE,
        ui_corpus.OTHER,
    ]  # newest first
    assert body["episodes"][0]["number"] == 34 and body["episodes"][0]["transcript"] is True
    assert body["wiki_pages"] == 1 and body["transcripts"] == 2


def test_older_index_without_episodes_scans_passages(ui_index) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from index.library import episodes

    old = replace(
        ui_index, manifest={k: v for k, v in ui_index.manifest.items() if k != "episodes"}
    )
    assert episodes(old) == episodes(ui_index)


def test_api_timeline(client: TestClient) -> None:
    r = client.get("/api/timeline", params={"q": "ketamine dissociation"})
    assert r.status_code == 200
    body = r.json()
    assert body["threshold"] == 0.50
    first = body["episodes"][0]
    assert first["episode"]["id"] == ui_corpus.EPISODE
    assert first["duration"] == ui_corpus.duration("depression-episode.vtt")
    assert first["duration_known"] is True and first["marks"]
    for m in first["marks"]:
        assert m["score"] >= 0.50 and 0 <= m["seconds"] <= first["duration"]
        assert m["url"].endswith(f"&t={int(m['seconds'])}s")
    # the ketamine talk is at 2:00-4:00 and 6:00-8:00 of the written transcript
    assert all(120 <= m["seconds"] < 240 or m["seconds"] >= 360 for m in first["marks"])
    assert client.get("/api/timeline", params={"q": ""}).status_code == 422


def test_page_shows_context_timeline_and_no_paths_or_negative_scores(
    client: TestClient, ui_corpus: Path
) -> None:
    html = client.get("/", params={"q": "ketamine dissociation", "k": 10}).text
    assert html.count('<details class="around">') >= 5
    assert 'class="cited"' in html and '<svg class="strip"' in html
    assert "score -" not in html and str(ui_corpus) not in html and "relevance" in html
    assert re.search(r'<script src="[^"]*/static/page\.js" defer></script>', html)
    assert "<script>" not in html  # no inline script: a CSP can forbid it
    assert "youtube-nocookie" not in html  # the player's address lives in the script only


def test_grouped_by_episode(client: TestClient) -> None:
    html = client.get("/", params={"q": "ketamine dissociation", "k": 10, "group": "episode"}).text
    groups = re.findall(r'<section class="group">\s*<h3>([^<]*)', html)
    assert groups[0].startswith("#34 Understanding") and any(
        "Master Your Sleep" in g for g in groups
    )


def test_home_page_knows_the_library(client: TestClient) -> None:
    html = client.get("/").text
    assert "<strong>2</strong> episodes" in html and "<strong>1</strong> wiki pages" in html
    assert '<option value="#2 Master Your Sleep (2021-01-11)">' in html


def test_page_weight_for_ten_results(client: TestClient) -> None:
    html = client.get("/", params={"q": "ketamine dissociation", "k": 10}).content
    assert html.count(b'<article class="result') == 10
    css = client.get("/static/style.css").content
    js = client.get("/static/page.js").content
    assert len(html) + len(css) + len(js) < 100_000


def test_docs_work_offline(client: TestClient) -> None:
    html = client.get("/docs").text
    assert "cdn" not in html.lower() and "<script>" not in html  # no inline script
    for url in re.findall(r'(?:src|href)="(/[^"]+)"', html):
        assert client.get(url).status_code == 200, url
    assert client.get("/favicon.ico").headers["content-type"].startswith("image/svg")


def test_a_result_with_feed_audio_gets_an_audio_element(client: TestClient, ui_index) -> None:  # type: ignore[no-untyped-def]
    """The feeds branch's Episode.audio_url reaches the page as ResultOut.audio_url."""
    from fastapi.templating import Jinja2Templates

    from server import pages

    options = Settings().query_options()
    _, context = pages.page(ui_index, {"q": "ketamine dissociation"}, options, client.app)  # type: ignore[arg-type]
    first = context["results"][0]
    first.r.audio_url = "/audio/ep.mp3"
    env = Jinja2Templates(directory=str(Path(pages.__file__).parent / "templates")).env
    html = env.get_template("index.html").render(context | {"url_for": lambda *a, **k: "/s"})
    audio = (
        f'<audio class="play-audio" controls preload="none" src="/audio/ep.mp3#t={first.start}">'
    )
    assert audio in html and html.count("<audio") == 1


def test_no_timeline_when_the_library_does_not_answer(client: TestClient) -> None:
    html = client.get("/", params={"q": "How do I file my taxes this year?"}).text
    assert "Not covered" in html and '<svg class="strip"' not in html
