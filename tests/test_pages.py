"""The page's building blocks: pure decisions on hand-made records, then the
page, /api/timeline and /api/episodes through the real app over a small
library with transcripts (tests/ui_corpus.py)."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from index.library import EpisodeInfo, Library
from index.records import Hit
from index.timeline import Chapter, Mark, Strip, chapters, episodes_of, extent, marks, within
from ingest.records import Episode, Passage, Sentence, Time
from server.app import create_app
from server.pages import citation, drawn, relevance, resolve_episode, strip_svg
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


def test_strip_svg_marks_are_links_inside_the_strip() -> None:
    ep = Episode("a&b", 'Title "<x>"', None)
    strip = Strip(
        ep,
        600.0,
        True,
        [Mark(0, 0.9, True), Mark(300, 0.51, True), Mark(600, 0.7, False)],
        [Chapter("Intro", 0)],
    )
    svg = strip_svg(strip, 0.51)
    assert svg.count("<path d=") == 3 and svg.count('<path class="chapter"') == 1
    assert [int(x) for x in re.findall(r'<path d="M(\d+) 0v', svg)] == [3, 500, 997]
    assert re.findall(r'stroke-opacity="([\d.]+)"', svg) == [".86", ".30", ".57"]
    hrefs = re.findall(r'<a href="([^"]+)">', svg)
    assert hrefs == [f"https://www.youtube.com/watch?v=a&amp;b&amp;t={t}s" for t in (0, 300, 600)]
    assert "<x>" not in svg and "&lt;x&gt;" in svg  # every value escaped
    assert "<title>≈0:10:00 · relevance 70</title>" in svg


def test_marks_within_a_hundredth_of_the_episode_are_drawn_as_their_best() -> None:
    # 1000 s: a hundredth is 10 s; a run is measured from its first mark
    ms = [Mark(100, 0.6, True), Mark(104, 0.8, True), Mark(109, 0.7, True), Mark(111, 0.55, True)]
    assert drawn([*ms, Mark(500, 0.6, True)], 1000.0) == [
        (Mark(104, 0.8, True), 3),
        (Mark(111, 0.55, True), 1),
        (Mark(500, 0.6, True), 1),
    ]
    every = [Mark(float(s), 0.6, True) for s in range(0, 7200, 5)]  # one every 5 s
    assert len(drawn(every, 7200.0)) <= 101
    svg = strip_svg(Strip(EP, 1000.0, True, ms, []), 0.51)
    assert "<title>0:01:44 · relevance 80 · best of 3 moments here</title>" in svg
    assert 'aria-label="An episode: 4 moments on this question"' in svg


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
    assert html.count('<details class="around">') == 10
    assert html.count('<p class="context-link"><a href="/context?doc=') == 10
    assert 'class="cited"' not in html  # contexts are their own pages (the page stays light)
    assert '<svg class="strip"' in html
    assert "score -" not in html and str(ui_corpus) not in html and "relevance" in html
    assert re.search(r'<script src="[^"]*/static/page\.js" defer></script>', html)
    assert "<script>" not in html  # no inline script: a CSP can forbid it
    assert "youtube-nocookie" not in html  # the player's address lives in the script only


def test_a_transcript_card_names_its_episode_once(client: TestClient) -> None:
    # A transcript's document is its episode: the header names it, the trail
    # under it repeated it.  A wiki card's trail still starts with its page.
    api = client.get("/api/search", params={"q": "ketamine dissociation", "k": 10}).json()
    html = client.get("/", params={"q": "ketamine dissociation", "k": 10}).text
    trails = [unescape(t) for t in re.findall(r'<p class="trail">([^<]*)', html)]
    assert len(trails) == len(api["results"]) == 10
    kinds = {r["kind"] for r in api["results"]}
    assert kinds == {"transcript", "wiki"}
    for r, trail in zip(api["results"], trails, strict=True):
        if r["kind"] == "transcript":
            assert r["episode"]["title"] not in trail
        else:
            assert trail.startswith(r["document"]["title"])
    answer = client.get("/api/ask", params={"q": "ketamine dissociation"}).json()["answer"]
    assert answer and all(not a["begins_mid_sentence"] for a in answer)


def context_links(client: TestClient, q: str, **params: Any) -> list[str]:
    html = client.get("/", params={"q": q, "k": 10, **params}).text
    return [h.replace("&amp;", "&") for h in re.findall(r'context-link"><a href="([^"]+)"', html)]


def lines(html: str) -> list[tuple[str, str]]:
    """A context page's lines: (class, the line's text without its time)."""
    line = r'<li( class="cited"[^>]*)?>(?:<a class="t"[^>]*>[^<]*</a> )?([^<]*)</li>'
    return [("cited" if c else "", unescape(t)) for c, t in re.findall(line, html)]


def test_context_page_of_a_transcript_moment(client: TestClient) -> None:
    api = client.get("/api/search", params={"q": "ketamine dissociation", "k": 10}).json()
    links = context_links(client, "ketamine dissociation")
    first = api["results"][0]
    assert first["kind"] == "transcript"
    assert links[0].startswith(f"/context?{urlencode({'doc': first['document']['id']})}&at=")
    r = client.get(links[0])
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    html = r.text
    assert f"<title>{first['timestamp']['label']} · Understanding &amp; Conquering" in html
    found = lines(html)
    assert [c for c, _ in found].count("cited") == 1 and len(found) > 5
    cited = next(t for c, t in found if c)
    assert cited == first["sentence"]
    at = first["timestamp"]["seconds"]
    seconds = [int(s) for s in re.findall(r'<a class="t" href="[^"]*&amp;t=(\d+)s"', html)]
    assert seconds == sorted(seconds) and all(abs(s - at) <= 61 for s in seconds)
    assert min(seconds) < at < max(seconds)  # before and after


def test_context_page_of_a_wiki_result_is_its_whole_section(client: TestClient, ui_index) -> None:  # type: ignore[no-untyped-def]
    links = context_links(client, "psilocybin serotonin receptor", kind="wiki")
    html = client.get(links[0]).text
    assert "The whole section" in html
    trail = re.search(r'<p class="trail">([^<]*)</p>', html)
    assert trail and " › " in trail.group(1)
    section = tuple(trail.group(1).replace("&amp;", "&").split(" › ")[1:])
    rows = range(len(ui_index))
    expect = [
        s.text
        for r in rows
        if (p := ui_index.backend.passage(r)).kind == "wiki" and p.section == section
        for s in p.sentences
    ]
    got = [t for _, t in lines(html)]
    assert got == list(dict.fromkeys(expect)) and len(got) >= 2


def test_context_page_errors(client: TestClient) -> None:
    link = context_links(client, "ketamine dissociation")[0]
    assert client.get("/context").status_code == 422
    assert client.get("/context", params={"doc": "x", "at": "-1"}).status_code == 422
    assert client.get("/context", params={"doc": "x", "at": "a"}).status_code == 422
    assert client.get("/context", params={"doc": "x" * 1001, "at": "1"}).status_code == 422
    r = client.get("/context", params={"doc": "<script>x</script>", "at": "0"})
    assert r.status_code == 404 and "no document" in r.text
    assert "<script>x" not in r.text and "&lt;script&gt;x" in r.text
    doc = link.split("doc=")[1].split("&")[0]
    r = client.get(f"/context?doc={doc}&at=1")  # inside a sentence, not at its start
    assert r.status_code == 404 and "starts at character 1" in r.text


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
    # a results page leaves the list to page.js (/api/episodes), its labels the same
    results = client.get("/", params={"q": "ketamine"}).text
    assert '<datalist id="episode-list"></datalist>' in results


def test_page_weight_for_ten_results(client: TestClient) -> None:
    html = client.get("/", params={"q": "ketamine dissociation", "k": 10}).content
    assert html.count(b'<article class="result') == 10 and b"<svg" in html
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


def test_chapters_under_the_strip(client: TestClient, ui_index) -> None:  # type: ignore[no-untyped-def]
    """Chapter titles (a feed's <podcast:chapters>, as section trails) under their
    strip, each a link to its second, and a line on the strip at its start."""
    from dataclasses import replace

    from fastapi.templating import Jinja2Templates

    from server import pages

    options = Settings().query_options()
    _, context = pages.page(ui_index, {"q": "ketamine dissociation"}, options, client.app)  # type: ignore[arg-type]
    strip = replace(
        context["strips"][0][0], chapters=[Chapter("Intro", 0), Chapter("Ketamine", 120)]
    )
    context["strips"] = [(strip, pages.strip_svg(strip, options.abstain_below))]
    env = Jinja2Templates(directory=str(Path(pages.__file__).parent / "templates")).env
    html = env.get_template("index.html").render(context | {"url_for": lambda *a, **k: "/s"})
    url = f"https://www.youtube.com/watch?v={ui_corpus.EPISODE}&amp;t="
    assert (
        f'<ol class="chapters"><li><a href="{url}0s">0:00:00</a> Intro</li>'
        f'<li><a href="{url}120s">0:02:00</a> Ketamine</li></ol>'
    ) in html
    assert html.count('<path class="chapter"') == 2


def test_no_timeline_when_the_library_does_not_answer(client: TestClient) -> None:
    html = client.get("/", params={"q": "How do I file my taxes this year?"}).text
    assert "Not covered" in html and '<svg class="strip"' not in html


COLD = (
    "Using Deliberate Cold Exposure for Health and Performance ｜ Huberman Lab Podcast #66.mp3.vtt"
)
COOLING = (
    "Supercharge Exercise Performance & Recovery with Cooling ｜ Huberman Lab Podcast #19.mp3.vtt"
)


@pytest.mark.shared
@pytest.mark.slow
def test_page_weight_on_the_shared_library_heaviest_case(
    shared: Path,
    tmp_path: Path,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    """The heaviest 10-result page of 2,106 questions over the whole library
    (docs/benchmarks.md) on a library of its episodes: two transcripts on the
    very topic (a mark every half minute) and its wiki pages."""
    from index import build, open_index
    from ingest import load

    wiki = shared / "wiki" / "hubermanlab"
    loaded = load(
        [
            wiki / "hubermanlab.md",
            *sorted(wiki.glob("*cold_exposure*.md")),
            shared / "transcripts" / COLD,
            shared / "transcripts" / COOLING,
            shared / "catalog" / "transcripts.csv",
            shared / "catalog" / "episodes.csv",
        ]
    )
    out = tmp_path / "index"
    build(loaded.documents, out, embedder, catalog_files=loaded.catalog_files)
    idx = open_index(out, embedder)
    q = (
        "What are the key ways that temperature, specifically cold, can be used to "
        "improve physical performance, recovery, and overall well-being?"
    )
    with TestClient(create_app(Settings(index_dir=out), index=idx)) as c:
        assets = len(c.get("/static/style.css").content) + len(c.get("/static/page.js").content)
        html = c.get("/", params={"q": q, "k": 10}).content
        moments = c.get("/api/timeline", params={"q": q}).json()["episodes"]
    assert html.count(b'<article class="result') == 10
    assert b'<datalist id="episode-list"></datalist>' in html
    assert sum(len(e["marks"]) for e in moments) > 150  # a mark every half minute or so
    drawn_marks = html.count(b"<path d=")
    assert 0 < drawn_marks <= 101 * len(moments) and drawn_marks < sum(
        len(e["marks"]) for e in moments
    )
    assert len(html) + assets < 100_000
