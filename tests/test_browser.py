"""The page as a person sees it: Playwright driving Debian's chromium against a
real `podcite serve`.  Skips where chromium or Playwright is missing (a
user's machine); CI installs both (.ci/run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser


def test_ask_a_question_and_follow_the_timestamp(
    browser: Any, live_server: str, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(live_server + "/")
    assert page.evaluate("document.activeElement.id") == "q"  # focus on load
    page.keyboard.type("Who found a one to three hertz rhythm under ketamine?")
    page.keyboard.press("Enter")
    page.wait_for_selector("section.answer")
    answer = page.locator("section.answer li").first
    assert "Vesuna" in answer.inner_text()
    link = answer.locator("a.chip")
    assert link.get_attribute("href") == "https://www.youtube.com/watch?v=Xu1FMCxoEFc&t=4984s"
    assert link.inner_text() == "1:23:04"
    assert page.locator("article.result").count() == 5
    assert page.locator("article.result mark").count() == 5
    # no external assets: every request stays on podcite itself
    assert all(u.startswith(live_server) for u in requests), requests
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000
    page.close()


def test_script_in_query_is_shown_as_text(browser: Any, live_server: str) -> None:
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(live_server + "/")
    page.fill("#q", "<script>alert('x')</script> ketamine")
    page.click("button[type=submit]")
    page.wait_for_selector("article.result")
    assert dialogs == []
    assert page.input_value("#q") == "<script>alert('x')</script> ketamine"
    scripts = page.evaluate("[...document.scripts].map(s => [s.src, s.text])")
    assert [(src.rsplit("/", 1)[-1], text) for src, text in scripts] == [("page.js", "")]
    page.close()


def test_phone_width_and_error_state(browser: Any, live_server: str) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 740})
    page.goto(live_server + "/?q=ketamine")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.goto(live_server + "/?q=+++")
    assert "could not be searched" in page.inner_text("section.error")
    page.close()
