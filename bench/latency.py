"""/api/search latency, in-process and over HTTP, on an index.

200 distinct questions (relevant_qs.jsonl from the shared data, else our own
question sets), after 20 warm-up queries; reports p50/p95 in milliseconds.

    .venv/bin/python bench/latency.py --index /tmp/wiki_index [--mode dense]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def questions(n: int) -> list[str]:
    src = SHARED / "eval" / "relevant_qs.jsonl"
    files = [src] if src.exists() else sorted((ROOT / "eval").glob("*_questions.jsonl"))
    qs = [json.loads(line)["question"] for f in files for line in f.open() if line.strip()]
    return list(dict.fromkeys(qs))[:n]


def pct(xs: list[float], p: float) -> float:
    return statistics.quantiles(xs, n=100)[int(p) - 1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--mode", default=None)
    args = ap.parse_args()
    qs = questions(args.n + 20)
    warm, timed = qs[:20], qs[20:]
    extra = {"mode": args.mode} if args.mode else {}

    from index import SentenceTransformerEmbedder, open_index, search

    idx = open_index(args.index, SentenceTransformerEmbedder())
    for q in warm:
        search(idx, q, 5, **extra)
    lat = []
    for q in timed:
        t0 = time.perf_counter()
        search(idx, q, 5, **extra)
        lat.append((time.perf_counter() - t0) * 1000)
    print(f"in-process search: n={len(lat)} p50={pct(lat, 50):.1f} ms p95={pct(lat, 95):.1f} ms")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PODCITE_INDEX_DIR": str(args.index), "PODCITE_METRICS": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(240):
                try:
                    if client.get("/healthz").json().get("status") == "ok":
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            for q in warm:
                client.get("/api/search", params={"q": q, "k": 5, **extra})
            http = []
            for q in timed:
                t0 = time.perf_counter()
                r = client.get("/api/search", params={"q": q, "k": 5, **extra})
                http.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
        p50, p95 = pct(http, 50), pct(http, 95)
        print(f"HTTP /api/search:  n={len(http)} p50={p50:.1f} ms p95={p95:.1f} ms")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
