"""The search page's cost: time to render it (search, answer, timeline and
template, in process) against /api/ask for the same questions; its weight
(HTML + CSS + JS) with 10 results; and the context page a result opens.

Questions: eval/wiki_questions.jsonl and eval/moment_questions.jsonl (this
repository's own), interleaved page / API per question after 10 warm-ups.
``--shared`` also weighs a 10-result page for every question of the shared
question files (../shared/data/eval: syn_test, qna_test, relevant_qs,
irrelevant_qs, huberman_agent_questions; about 2,000), where that folder is.

    .venv/bin/python bench/page.py --index /tmp/lib/index [--n 60] [--shared]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import time
from pathlib import Path

from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "eval"
LIMIT = 100_000  # the page's goal (issue 12): HTML + CSS + JS under 100 kB
CONTEXT_LINK = re.compile(r'class="context-link"><a href="([^"]+)"')


def questions() -> list[str]:
    files = [ROOT / "eval" / "wiki_questions.jsonl", ROOT / "eval" / "moment_questions.jsonl"]
    qs = [json.loads(line)["question"] for f in files for line in f.open() if line.strip()]
    return list(dict.fromkeys(qs))


def shared_questions() -> list[str]:
    """Every question of the shared eval files (none where they are absent)."""
    qs: list[str] = []
    for name in ("syn_test", "qna_test", "relevant_qs", "irrelevant_qs"):
        f = SHARED / f"{name}.jsonl"
        if f.exists():
            qs += [json.loads(x)["question"] for x in f.open(encoding="utf-8") if x.strip()]
    agent = SHARED / "huberman_agent_questions.csv"
    if agent.exists():
        with agent.open(encoding="utf-8") as fh:
            qs += [row["question"] for row in csv.DictReader(fh)]
    # the page's own limit on a question (index.records.MAX_QUERY_CHARS)
    return [q for q in dict.fromkeys(q.strip() for q in qs) if q and len(q) <= 1000]


def timed(client: TestClient, path: str, params: dict[str, str]) -> tuple[float, bytes]:
    """One request's milliseconds and body, with the question vector cache
    emptied first: each side pays its own embedding."""
    client.app.state.index.queries.clear()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    r = client.get(path, params=params or None)  # None: keep the query in path
    ms = (time.perf_counter() - t0) * 1000
    assert r.status_code == 200, (path, params, r.status_code)
    return ms, r.content


def weights(client: TestClient, qs: list[str], assets: int) -> list[tuple[int, str]]:
    """Each question's 10-result page weight (HTML + CSS + JS), with the question."""
    out = []
    for q in qs:
        html = client.get("/", params={"q": q, "k": "10"}).content
        out.append((len(html) + assets, q))
    return out


def summary(name: str, found: list[tuple[int, str]]) -> None:
    sizes = sorted(w for w, _ in found)
    over = sum(w >= LIMIT for w in sizes)
    worst = max(found)
    print(
        f"weight (k=10, HTML+CSS+JS), {name}, {len(sizes)} questions: "
        f"median {statistics.median(sizes) / 1000:.1f} kB, "
        f"p95 {sizes[int(0.95 * (len(sizes) - 1))] / 1000:.1f} kB, "
        f"max {worst[0] / 1000:.1f} kB ({worst[1]!r}); {over} at or over 100 kB"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--n", type=int, default=80)
    ap.add_argument("--shared", action="store_true", help="also weigh every shared question")
    args = ap.parse_args()
    from server.app import create_app
    from server.runtime import open_for_queries
    from server.settings import Settings

    settings = Settings(index_dir=args.index)
    app = create_app(settings, index=open_for_queries(settings))
    qs = questions()[: args.n]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with TestClient(app) as client:
        assets = sum(len(client.get(f"/static/{f}").content) for f in ("style.css", "page.js"))
        client.get("/")  # the library summary is computed once, here
        for q in qs[:10]:
            client.get("/", params={"q": q})
        page, api, home = [], [], timed(client, "/", {})
        for q in qs:
            page.append(timed(client, "/", {"q": q})[0])
            api.append(timed(client, "/api/ask", {"q": q})[0])
        found = weights(client, qs, assets)
        # the context pages of each question's first three results (k=10 pages)
        context_ms, context_kb = [], []
        for q in qs:
            html = client.get("/", params={"q": q, "k": "10"}).text
            for link in CONTEXT_LINK.findall(html)[:3]:
                ms, body = timed(client, link.replace("&amp;", "&"), {})
                context_ms.append(ms)
                context_kb.append(len(body) / 1000)
        everything = weights(client, shared_questions(), assets) if args.shared else []
    p50_page, p50_api = statistics.median(page), statistics.median(api)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"questions: {len(qs)}; home page {(len(home[1]) + assets) / 1000:.1f} kB HTML+CSS+JS")
    print(f"page (k=5) p50 {p50_page:.1f} ms, p95 {statistics.quantiles(page, n=20)[18]:.1f} ms")
    print(f"/api/ask (k=5) p50 {p50_api:.1f} ms; page / api = {p50_page / p50_api:.2f}")
    print(f"CSS+JS {assets / 1000:.1f} kB")
    summary("repository questions", found)
    if everything:
        summary("shared questions", everything)
    print(
        f"context page ({len(context_ms)}: first three results of each): "
        f"p50 {statistics.median(context_ms):.1f} ms, "
        f"median {statistics.median(context_kb):.1f} kB, max {max(context_kb):.1f} kB HTML"
    )


if __name__ == "__main__":
    main()
