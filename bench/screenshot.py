"""Refresh docs/screenshot.png: the page for one question, in Debian's chromium.

.venv/bin/python bench/screenshot.py --index /tmp/podcite-full
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--q", default="Which serotonin receptor does psilocybin act on?")
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
            page.goto(base + "/")
            page.fill("#q", args.q)
            page.keyboard.press("Enter")
            page.wait_for_selector("article.result")
            page.screenshot(path=str(ROOT / "docs" / "screenshot.png"))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
