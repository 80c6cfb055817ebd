"""The search page's cost: time to render it (search, answer, timeline, context
and template, in process) against /api/ask for the same questions, and its
weight (HTML + CSS + JS) with 10 results.

Questions: eval/wiki_questions.jsonl and eval/moment_questions.jsonl (this
repository's own), interleaved page / API per question after 10 warm-ups.

    .venv/bin/python bench/page.py --index /work/lib/index [--n 80]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent


def questions() -> list[str]:
    files = [ROOT / "eval" / "wiki_questions.jsonl", ROOT / "eval" / "moment_questions.jsonl"]
    qs = [json.loads(line)["question"] for f in files for line in f.open() if line.strip()]
    return list(dict.fromkeys(qs))


def timed(client: TestClient, path: str, params: dict[str, str]) -> tuple[float, int]:
    """One request's milliseconds and bytes, with the question vector cache
    emptied first: each side pays its own embedding."""
    client.app.state.index.queries.clear()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    r = client.get(path, params=params)
    ms = (time.perf_counter() - t0) * 1000
    assert r.status_code == 200, (path, params, r.status_code)
    return ms, len(r.content)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--n", type=int, default=80)
    args = ap.parse_args()
    from server.app import create_app
    from server.runtime import open_for_queries
    from server.settings import Settings

    settings = Settings(index_dir=args.index)
    app = create_app(settings, index=open_for_queries(settings))
    qs = questions()[: args.n]
    with TestClient(app) as client:
        assets = sum(len(client.get(f"/static/{f}").content) for f in ("style.css", "page.js"))
        client.get("/")  # the library summary is computed once, here
        for q in qs[:10]:
            client.get("/", params={"q": q})
        page, api, weight, home = [], [], [], timed(client, "/", {})
        for q in qs:
            page.append(timed(client, "/", {"q": q})[0])
            api.append(timed(client, "/api/ask", {"q": q})[0])
        for q in qs:
            weight.append(timed(client, "/", {"q": q, "k": "10"})[1] + assets)
    p50_page, p50_api = statistics.median(page), statistics.median(api)
    print(f"questions: {len(qs)}; home page {home[1] / 1000:.1f} kB HTML")
    print(f"page (k=5) p50 {p50_page:.1f} ms, p95 {statistics.quantiles(page, n=20)[18]:.1f} ms")
    print(f"/api/ask (k=5) p50 {p50_api:.1f} ms; page / api = {p50_page / p50_api:.2f}")
    print(
        f"weight (k=10, HTML+CSS+JS): median {statistics.median(weight) / 1000:.1f} kB, "
        f"max {max(weight) / 1000:.1f} kB, CSS+JS {assets / 1000:.1f} kB"
    )


if __name__ == "__main__":
    main()
