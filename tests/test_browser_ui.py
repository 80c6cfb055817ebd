"""The page's listening and looking-around features in real Chromium (Playwright
and Debian's chromium, as tests/test_browser.py): play in place, context,
timeline, episode picker, copy citation, and the page with JavaScript off."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests import ui_corpus

pytestmark = pytest.mark.browser
Q = "/?q=ketamine+dissociation&k=10"


def seconds_of(url: str) -> int:
    return int(parse_qs(urlparse(url).query)["t"][0].rstrip("s"))


def test_play_loads_nothing_external_before_the_click(browser: Any, ui_live_server: str) -> None:
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.route("https://www.youtube-nocookie.com/**", lambda route: route.abort())
    page.goto(ui_live_server + Q)
    first = page.locator("article.result").first
    button = first.locator("button.play")
    assert button.is_visible()
    assert page.locator("iframe").count() == 0
    assert all(u.startswith(ui_live_server) for u in requests), requests
    chip = first.locator("a.chip").get_attribute("href") or ""
    button.click()
    frame = first.locator("iframe.yt")
    src = frame.get_attribute("src") or ""
    assert src == (
        f"https://www.youtube-nocookie.com/embed/{ui_corpus.EPISODE}"
        f"?start={seconds_of(chip)}&autoplay=1"
    )
    page.wait_for_timeout(300)
    outside = [u for u in requests if not u.startswith(ui_live_server)]
    assert outside and all(u.startswith("https://www.youtube-nocookie.com/embed/") for u in outside)
    page.close()


def test_context_expands_around_the_moment(browser: Any, ui_live_server: str) -> None:
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(ui_live_server + Q)
    first = page.locator("article.result").first
    cited_at = seconds_of(first.locator("a.chip").get_attribute("href") or "")
    lines = first.locator("details.around li")
    assert lines.count() == 0  # loaded when opened (page.js), not with the page
    assert not first.locator("details.around .context-link a").is_visible()
    first.locator("details.around summary").click()
    lines.first.wait_for()
    assert first.locator("details.around .context-link").count() == 0  # replaced in place
    assert lines.first.is_visible() and lines.count() > 5
    assert first.locator("li.cited").inner_text().endswith(first.locator("mark").inner_text())
    for href in first.locator("details.around a.t").evaluate_all("as => as.map(a => a.href)"):
        assert abs(seconds_of(href) - cited_at) <= 60
    assert any("/context?" in u for u in requests)
    assert all(u.startswith(ui_live_server) for u in requests), requests
    count = lines.count()
    first.locator("details.around summary").click()  # closed and opened again: no second copy
    first.locator("details.around summary").click()
    page.wait_for_timeout(200)
    assert lines.count() == count
    page.close()


def test_timeline_marks_link_to_their_seconds(browser: Any, ui_live_server: str) -> None:
    import httpx

    page = browser.new_page()
    page.goto(ui_live_server + Q)
    strip = page.locator("figure.episode-strip").first
    assert strip.get_attribute("data-episode") == ui_corpus.EPISODE
    found = strip.locator("svg a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    api = httpx.get(ui_live_server + "/api/timeline", params={"q": "ketamine dissociation"}).json()
    expect = [int(m["seconds"]) for m in api["episodes"][0]["marks"]]
    assert [seconds_of(href) for href in found] == expect and expect
    for href in found:
        assert href.startswith(f"https://www.youtube.com/watch?v={ui_corpus.EPISODE}&")
    box = strip.locator("svg").bounding_box()
    mark = strip.locator("svg a path").first.bounding_box()
    assert box and mark and mark["width"] > 0 and mark["height"] >= box["height"] - 1
    page.close()


LABELS = [
    "#34 Understanding & Conquering Depression (2021-08-23)",
    "#2 Master Your Sleep (2021-01-11)",
]


def options(page: Any) -> list[str]:
    return list(page.locator("#episode-list option").evaluate_all("os => os.map(o => o.value)"))


def test_episode_picker_filters(browser: Any, ui_live_server: str) -> None:
    page = browser.new_page()
    page.goto(ui_live_server + "/")
    assert options(page) == LABELS
    page.fill("#q", "ketamine dissociation")
    page.click("details.filters summary")
    page.fill("#episode", LABELS[1])  # as the picker's label reads
    page.click("button[type=submit]")
    page.wait_for_selector("article.result")
    episodes = page.locator("article.result .episode").all_inner_texts()
    assert episodes and all(e.startswith("Master Your Sleep") for e in episodes)
    # a results page fills the same list from /api/episodes when the field is used
    page.goto(ui_live_server + Q)
    assert options(page) == []
    page.click("details.filters summary")
    page.focus("#episode")
    page.wait_for_selector("#episode-list option:nth-child(2)", state="attached")
    assert options(page) == LABELS
    page.fill("#episode", LABELS[0])
    page.click("button[type=submit]")
    page.wait_for_selector("article.result")
    episodes = page.locator("article.result .episode").all_inner_texts()
    assert episodes and all(e.startswith("Understanding & Conquering") for e in episodes)
    page.close()


def test_copy_citation(browser: Any, ui_live_server: str) -> None:
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=ui_live_server)
    page = context.new_page()
    page.goto(ui_live_server + Q)
    first = page.locator("article.result").first
    shown = first.locator(".cite-text").inner_text()
    first.locator("button.copy").click()
    page.wait_for_function("document.querySelector('button.copy').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == shown
    assert re.fullmatch(
        r"\u201c.+\u201d \u2014 Understanding & Conquering Depression \(2021-08-23\), "
        r"\d:\d\d:\d\d, https://www\.youtube\.com/watch\?v=Xu1FMCxoEFc&t=\d+s",
        shown,
    ), shown
    context.close()


def test_the_page_with_javascript_off(browser: Any, ui_live_server: str) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(ui_live_server + Q)
    first = page.locator("article.result").first
    assert not first.locator("button.play").is_visible()  # the time link is the control
    assert not first.locator("button.copy").is_visible()
    assert first.locator("a.chip").get_attribute("href", timeout=1000)
    assert first.locator(".cite-text").is_visible()  # the citation, selectable
    assert page.locator("svg.strip a").count() > 0
    cited_at = seconds_of(first.locator("a.chip").get_attribute("href") or "")
    mark = first.locator("mark").inner_text()
    first.locator("details.around summary").click()  # native, no script
    link = first.locator("details.around .context-link a")
    assert link.is_visible()
    link.click()  # the context is its own server-rendered page
    page.wait_for_selector("ol.context")
    assert page.locator("li.cited").is_visible()
    assert page.locator("li.cited").inner_text().endswith(mark)
    for href in page.locator("ol.context a.t").evaluate_all("as => as.map(a => a.href)"):
        assert abs(seconds_of(href) - cited_at) <= 60
    page.goto(ui_live_server + Q + "&group=episode")
    assert page.locator("section.group").count() == 2
    page.goto(ui_live_server + "/")
    assert options(page) == LABELS  # the home page's picker needs no script
    context.close()


def test_api_docs_render_offline(browser: Any, ui_live_server: str) -> None:
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(ui_live_server + "/docs")
    page.wait_for_selector('.opblock-summary-path[data-path="/api/timeline"]')
    assert all(u.startswith(ui_live_server) for u in requests), requests
    page.close()
