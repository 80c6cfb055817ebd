"""/api/search latency and serving under load, over HTTP against a real
``podcite serve`` (and, with ``--in-process``, ``index.search`` called directly).

What one run measures (issue 10's goals in brackets):

- **ready**: seconds from starting ``podcite serve`` to the first 200 on
  ``/readyz`` (≤ 3 s with a built index);
- **1 client**: ``/api/search`` (hybrid, k=5) one request at a time, p50/p99
  (p50 ≤ 8 ms on the whole library);
- **4 clients**: four at once, each on its own connection, p50/p99 and
  searches a second (p99 ≤ 40 ms);
- **/healthz while 16 clients search**: p50/p99 of ``/healthz`` asked every
  20 ms while 16 clients search without pause (p99 ≤ 50 ms), and how many
  searches were refused (503) meanwhile;
- **memory**: the server's resident memory after all that (RSS, and PSS,
  which divides pages shared between worker processes; ≤ 1 GB).

Every question is asked once per server (a repeated one is answered from the
question-vector cache): distinct questions from the shared relevant, irrelevant
and syn_test sets, 20 warm-up questions first.  The clients are threads of this
process with plain ``http.client`` keep-alive connections (the lightest Python
client), on the same machine as the server: on two cores they take CPU from it,
so the figures are what a local user sees, not the server's own time.

    .venv/bin/python bench/latency.py --index /tmp/lib/index [--backend onnx] [--workers 2]
    .venv/bin/python bench/latency.py --index /tmp/lib/index --tree /work/main   # another checkout
    .venv/bin/python bench/latency.py --index /tmp/lib/index --in-process        # search() alone

Run A/B comparisons interleaved (A, B, A, B) and read medians and ratios; state
``uptime`` beside them.  ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def questions() -> list[str]:
    """Distinct questions: shared relevant, irrelevant, syn_test (else our own sets)."""
    names = ("relevant_qs.jsonl", "irrelevant_qs.jsonl", "syn_test.jsonl", "qna_test.jsonl")
    files = [SHARED / "eval" / n for n in names if (SHARED / "eval" / n).exists()]
    files = files or sorted((ROOT / "eval").glob("*_questions.jsonl"))
    qs = [json.loads(line)["question"] for f in files for line in f.open() if line.strip()]
    return list(dict.fromkeys(q.strip() for q in qs))


def pct(xs: list[float], p: float) -> float:
    if len(xs) < 2:
        return xs[0] if xs else float("nan")
    return statistics.quantiles(xs, n=100, method="inclusive")[int(p) - 1]


def summary(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "p50": pct(xs, 50), "p99": pct(xs, 99)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the server ----------------------------------------------------------------


def tree_of(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's workers are children of the supervisor)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with suppress(OSError):
                todo.extend(int(c) for c in task.read_text().split())
    return out


def memory(pid: int) -> dict[str, Any]:
    """RSS and PSS in MB of the server's processes (PSS counts a page shared by
    two workers half in each, so its sum is the memory the server really uses)."""
    per = []
    for p in tree_of(pid):
        try:
            lines = Path(f"/proc/{p}/smaps_rollup").read_text().splitlines()[1:]
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in lines)
        kb = {k: int(v.split()[0]) for k, v in fields.items() if v.strip().endswith("kB")}
        per.append({"pid": p, "rss_mb": kb["Rss"] / 1024, "pss_mb": kb["Pss"] / 1024})
    return {
        "processes": per,
        "rss_mb": sum(x["rss_mb"] for x in per),
        "pss_mb": sum(x["pss_mb"] for x in per),
    }


@contextmanager
def server(
    index: Path, tree: Path, backend: str | None, workers: int, log: Path
) -> Iterator[tuple[int, subprocess.Popen[bytes], float]]:
    """A ``podcite serve`` from checkout ``tree``; yields (port, process, seconds to ready)."""
    port = free_port()
    env = {**os.environ, "PODCITE_INDEX_DIR": str(index), "PODCITE_METRICS": "true",
           "PYTHONPATH": str(tree)}  # fmt: skip
    if backend:
        env["PODCITE_EMBED_BACKEND"] = backend
    cmd = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"the server stopped: {log.read_text()[-2000:]}")
            time.sleep(0.02)
        ready = time.perf_counter() - t0
        yield port, proc, ready
    finally:
        proc.terminate()
        proc.wait(timeout=30)


class Client:
    """One keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str) -> tuple[int, float]:
        t0 = time.perf_counter()
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        r.read()
        return r.status, (time.perf_counter() - t0) * 1000

    def search(self, q: str, extra: dict[str, str]) -> tuple[int, float]:
        return self.get("/api/search?" + urllib.parse.urlencode({"q": q, "k": 5, **extra}))


def clients(port: int, qs: list[str], n: int, extra: dict[str, str]) -> dict[str, Any]:
    """``len(qs)`` searches by ``n`` clients at once; latencies, statuses, throughput."""
    it = iter(qs)
    lock = threading.Lock()
    lat: list[float] = []
    codes: list[int] = []

    def work() -> None:
        c = Client(port)
        while True:
            with lock:
                q = next(it, None)
            if q is None:
                return
            status, ms = c.search(q, extra)
            with lock:
                lat.append(ms)
                codes.append(status)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = [ms for ms, c in zip(lat, codes, strict=True) if c == 200]
    refused = codes.count(503)
    return {**summary(ok), "clients": n, "per_s": len(ok) / wall, "refused": refused,
            "errors": len(codes) - len(ok) - refused}  # fmt: skip


def health_under_load(
    port: int, qs: list[str], n: int, extra: dict[str, str], asks: int = 200
) -> dict[str, Any]:
    """``/healthz`` every 20 ms while ``n`` clients search without pause."""
    stop = threading.Event()
    pool = itertools.cycle(qs)
    lock = threading.Lock()
    codes: list[int] = []

    def search() -> None:
        c = Client(port)
        while not stop.is_set():
            with lock:
                q = next(pool)
            status, _ = c.search(q, extra)
            with lock:
                codes.append(status)

    threads = [threading.Thread(target=search) for _ in range(n)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # let the queue fill
    h = Client(port)
    lat = []
    for _ in range(asks):
        status, ms = h.get("/healthz")
        assert status == 200, status
        lat.append(ms)
        time.sleep(0.02)
    stop.set()
    for t in threads:
        t.join()
    return {**summary(lat), "searching": n, "searches": len(codes),
            "refused": codes.count(503)}  # fmt: skip


def in_process(index: Path, backend: str | None, qs: list[str], extra: dict[str, str]) -> None:
    """``search()`` called directly, and where its time goes: each stage of a
    hybrid search timed apart (the same calls ``index.search`` and
    ``index.rank`` make, through the public backend interface), then the JSON
    body ``/api/search`` sends."""
    from index import SentenceTransformerEmbedder, open_index, search
    from index.backend import rows_of
    from index.fusion import candidates, fuse
    from index.moment import with_moments
    from index.query import Options, SearchParams, run
    from index.records import Filters, FusionSettings
    from index.rerank import rerank
    from index.search import distinct, hit_at
    from server.schemas import search_json

    emb = SentenceTransformerEmbedder(backend=backend or "torch", threads=1)  # type: ignore[arg-type]
    idx = open_index(index, emb)
    for q in qs[:20]:
        search(idx, q, 5, **extra)  # type: ignore[arg-type]
    lat = []
    for q in qs[20:220]:
        t0 = time.perf_counter()
        search(idx, q, 5, **extra)  # type: ignore[arg-type]
        lat.append((time.perf_counter() - t0) * 1000)
    s = summary(lat)
    print(f"in-process search(): n={s['n']} p50 {s['p50']:.1f} ms p99 {s['p99']:.1f} ms")
    b, none, fusion = idx.backend, Filters(), FusionSettings()
    stages: dict[str, list[float]] = {}
    for q in qs[220:420]:
        t = [time.perf_counter()]
        v = idx.embed(q)  # "embed" (and into the question cache)
        t.append(time.perf_counter())
        dense = rows_of(b.dense(v, fusion.depth, none))
        t.append(time.perf_counter())
        keyword = rows_of(b.keyword(q, fusion.depth, none))  # BM25 over every row
        t.append(time.perf_counter())
        rows = candidates(dense, keyword)
        cos, bm = b.cosines(v, rows), b.keyword_scores(q, rows)
        ranked = fuse(dense, keyword, cos, bm, 20, fusion, bm25_ceiling=b.keyword_ceiling(q))
        t.append(time.perf_counter())
        ranked = rerank(idx, q, ranked, Options().rerank)  # the stored tokens' re-reading
        t.append(time.perf_counter())
        hits = distinct((hit_at(idx, r.row, r.cosine, v) for r in ranked), 5)
        t.append(time.perf_counter())
        with_moments(idx, hits, v)
        t.append(time.perf_counter())
        out = run(idx, SearchParams(q=q), False, Options())  # cached vector: no embedding
        t.append(time.perf_counter())
        search_json(out)
        t.append(time.perf_counter())
        names = ("embed", "dense", "BM25", "fusion", "re-reading", "best sentences", "moments",
                 "(run() again, vector cached)", "response JSON")  # fmt: skip
        for name, a, z in zip(names, t, t[1:], strict=False):
            stages.setdefault(name, []).append((z - a) * 1000)
    for name, xs in stages.items():
        print(f"  {name:30s} p50 {statistics.median(xs):6.2f} ms  mean {statistics.fmean(xs):6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose server runs")
    ap.add_argument("--backend", choices=["torch", "onnx"], default=None,
                    help="PODCITE_EMBED_BACKEND (default: the settings' default)")  # fmt: skip
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--n", type=int, default=200, help="timed searches with one client")
    ap.add_argument("--mode", default=None)
    ap.add_argument("--in-process", action="store_true", help="search() alone, no server")
    ap.add_argument("--skip-load", action="store_true", help="one client only")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    extra = {"mode": args.mode} if args.mode else {}
    qs = questions()
    if args.in_process:
        in_process(args.index, args.backend, qs, extra)
        return
    load = os.getloadavg()
    out: dict[str, Any] = {"tree": str(args.tree), "backend": args.backend,
                           "workers": args.workers, "load_before": load}  # fmt: skip
    log = Path(f"/tmp/podcite-latency-{os.getpid()}.log")
    started = server(args.index.resolve(), args.tree, args.backend, args.workers, log)
    with started as (port, proc, ready):
        out["ready_s"] = ready
        print(f"ready after {ready:.2f} s (first 200 on /readyz); load {load[0]:.2f}")
        warm, rest = qs[:20], qs[20:]
        c = Client(port)
        for q in warm:
            c.search(q, extra)
        one_qs, rest = rest[: args.n], rest[args.n :]
        out["one"] = one = clients(port, one_qs, 1, extra)
        print(f"1 client:  n={one['n']} p50 {one['p50']:.1f} ms p99 {one['p99']:.1f} ms "
              f"({one['per_s']:.1f}/s)")  # fmt: skip
        if not args.skip_load:
            four_qs, rest = rest[: 2 * args.n], rest[2 * args.n :]
            out["four"] = four = clients(port, four_qs, 4, extra)
            print(f"4 clients: n={four['n']} p50 {four['p50']:.1f} ms p99 {four['p99']:.1f} ms "
                  f"({four['per_s']:.1f}/s, {four['refused']} refused)")  # fmt: skip
            out["health"] = h = health_under_load(port, rest, 16, extra)
            print(f"/healthz while 16 clients search: p50 {h['p50']:.1f} ms p99 {h['p99']:.1f} ms "
                  f"({h['searches']} searches, {h['refused']} refused)")  # fmt: skip
        out["memory"] = mem = memory(proc.pid)
        print(f"memory: RSS {mem['rss_mb']:.0f} MB, PSS {mem['pss_mb']:.0f} MB over "
              f"{len(mem['processes'])} processes")  # fmt: skip
    out["load_after"] = os.getloadavg()
    print(f"load after: {out['load_after'][0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
