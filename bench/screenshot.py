"""Refresh the page's screenshots in docs/, in Debian's chromium: the answer with
its timeline (screenshot.png), a result's context opened in place
(screenshot-context.png: page.js fetches it from /context), results grouped by
episode (screenshot-grouped.png) and the home page (screenshot-home.png).

.venv/bin/python bench/screenshot.py --index /tmp/lib/index
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    # the page's placeholder: on the whole library its results are wiki pages and
    # transcripts, with a timeline
    ap.add_argument("--q", default="How does ketamine cause dissociation?")
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    env = {**os.environ, "PODCITE_INDEX_DIR": str(args.index)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(args.port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{base}/healthz").json().get("status") == "ok":
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 900, "height": 1200})
            page.set_viewport_size({"width": 900, "height": 620})
            page.goto(base + "/")
            page.click("details.filters summary")  # the episode picker with the filters
            page.screenshot(path=str(DOCS / "screenshot-home.png"))
            page.click("details.filters summary")
            page.set_viewport_size({"width": 900, "height": 1200})
            page.fill("#q", args.q)
            page.keyboard.press("Enter")
            page.wait_for_selector("article.result")
            page.screenshot(path=str(DOCS / "screenshot.png"))
            moment = "details.around summary:has-text('Around this moment')"
            transcript = page.locator(f"article.result:has({moment})").first
            transcript.locator("details.around summary").click()
            transcript.locator("details.around li.cited").wait_for()
            transcript.scroll_into_view_if_needed()
            transcript.screenshot(path=str(DOCS / "screenshot-context.png"))
            page.goto(base + "/?" + urlencode({"q": args.q, "k": 5, "group": "episode"}))
            page.locator("section.results").screenshot(path=str(DOCS / "screenshot-grouped.png"))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
