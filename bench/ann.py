"""Index by size: exact against HNSW, start-up and memory, 10^4 to 10^6 passages.

    .venv/bin/python bench/ann.py /tmp/scale/syn10k /tmp/scale/lib3 \\
        /tmp/scale/syn100k /tmp/scale/syn1000k [--rounds 2] [--out results.json]
    .venv/bin/python bench/ann.py /tmp/scale/syn1000k --compare 0 --out compare.json

Each measurement runs in a fresh process (``--child``), so start-up and
resident memory are clean, for each index directory and each dense search
(``flat``: exact; ``hnsw``: the directory's graph, built in memory when it has
none), interleaved flat, hnsw, flat, hnsw over ``--rounds``.  A child reports:

- start-up: ``open_index`` (with ``verify=True``, as ``podcite serve``) to the
  first answer, its page cache warm (a restart) and cold (the index's own files
  evicted with ``posix_fadvise``, nothing else's);
- in-process ``search(index, q, k=10)``, hybrid, over 200 questions of
  relevant_qs.jsonl after 20 warm-up ones, with the question vectors
  precomputed (the search itself timed) and, over 50 of them, with embedding;
- the dense ranking alone (depth 100, what hybrid asks for), the BM25 ranking
  alone, and the filtered dense rankings (kind, date range, episode);
- recall@10 of the HNSW dense top 10 against the exact one, unfiltered and
  filtered, and the overlap of the hybrid top 10 (HNSW child only);
- resident memory (anonymous and file-backed) after load and after the queries.

``--bm25`` times BM25's scoring and its per-term ceiling alone.
``--compare`` weighs the dense index itself: HNSW (M, efConstruction,
efSearch) against IVF-Flat (nprobe) on one thread, build CPU seconds, p50 and
recall@10 against exact.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
QVECS = Path("/tmp/scale/qvecs.npy")
EMBEDDED = 50  # questions timed with embedding (the model's cost is the same at every size)


def questions() -> list[str]:
    src = SHARED / "eval" / "relevant_qs.jsonl"
    qs = [json.loads(line)["question"] for line in src.open() if line.strip()]
    return list(dict.fromkeys(qs))


def query_vectors(qs: list[str]) -> np.ndarray:
    if QVECS.exists() and np.load(QVECS).shape[0] == len(qs):
        return np.load(QVECS)
    from index.embedder import SentenceTransformerEmbedder

    vecs = SentenceTransformerEmbedder().encode(qs).astype(np.float32)
    QVECS.parent.mkdir(parents=True, exist_ok=True)
    np.save(QVECS, vecs)
    return vecs


def rss() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)  # MiB
    return fields


def evict(path: Path) -> None:
    """Drop this index's files from the page cache (a cold start), nothing else's."""
    for f in path.resolve().rglob("*"):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def ms(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {
        "p50": round(statistics.median(xs) * 1000, 3),
        "p95": round(xs[int(0.95 * (len(xs) - 1))] * 1000, 3),
    }


def timed(f: Any, items: list[Any]) -> list[float]:
    out = []
    for x in items:
        t = time.perf_counter()
        f(x)
        out.append(time.perf_counter() - t)
    return out


def child(path: Path, mode: str, n: int, cold: bool) -> dict[str, Any]:
    t_import = time.perf_counter()
    from index import ann
    from index.open import open_index
    from index.records import Filters
    from index.search import search

    imports = time.perf_counter() - t_import
    qs = questions()
    vecs = np.load(QVECS)
    if cold:
        evict(path)
    t0 = time.perf_counter()
    index = open_index(path, None, verify=True, ann_mode=mode)  # type: ignore[arg-type]
    opened = time.perf_counter() - t0
    search(index, qs[0], 10, vector=vecs[0])
    first = time.perf_counter() - t0
    out: dict[str, Any] = {
        "index": str(path),
        "mode": mode,
        "ann": index.backend.dense_kind,  # type: ignore[attr-defined]
        "passages": len(index),
        "cold": cold,
        "imports_s": round(imports, 3),
        "open_s": round(opened, 3),
        "startup_s": round(first, 3),
        "rss_loaded": rss(),
    }
    if cold:
        return out
    backend = index.backend
    warm, rows = list(range(1, 21)), list(range(21, 21 + n))
    for i in warm:
        search(index, qs[i], 10, vector=vecs[i])
    out["search"] = ms(timed(lambda i: search(index, qs[i], 10, vector=vecs[i]), rows))
    out["dense"] = ms(timed(lambda i: backend.dense(vecs[i], 100, Filters()), rows))

    def bm25(i: int) -> None:
        backend._last_bm25 = None  # type: ignore[attr-defined]
        backend.keyword(qs[i], 100, Filters())

    out["bm25"] = ms(timed(bm25, rows))
    out["rss_after"] = rss()
    filters = {
        "kind=transcript": Filters(kind="transcript"),
        "kind=wiki": Filters(kind="wiki"),
        "after=2024-01-01": Filters(after="2024-01-01"),
        "after=2025-03-01": Filters(after="2025-03-01"),
        "episode": Filters(episode=_busiest_episode(index)),
    }
    admitted = {k: int(backend.admitted(f).sum()) for k, f in filters.items()}  # type: ignore[attr-defined]
    out["filtered"] = {
        k: {
            "admitted": admitted[k],
            **ms(timed(lambda i, f=f: backend.dense(vecs[i], 100, f), rows)),
        }
        for k, f in filters.items()
    }
    if index.backend.dense_kind == "hnsw":  # type: ignore[attr-defined]
        exact = open_index(path, None, verify=False, ann_mode="flat")
        sample = list(range(len(qs)))[: max(n, 500)]

        def rec(f: Filters, k: int = 10) -> float:
            got = [
                ann.recall_at(
                    [r for r, _ in backend.dense(vecs[i], 100, f)],
                    [r for r, _ in exact.backend.dense(vecs[i], 100, f)],
                    k,
                )
                for i in sample
            ]
            return round(float(np.mean(got)), 4)

        out["recall@10"] = rec(Filters())
        out["recall@10_filtered"] = {k: rec(f) for k, f in filters.items()}
        overlap, top1 = [], []
        for i in sample[:200]:
            a = [h.row for h in search(index, qs[i], 10, vector=vecs[i])]
            b = [h.row for h in search(exact, qs[i], 10, vector=vecs[i])]
            overlap.append(len(set(a) & set(b)) / max(len(b), 1))
            top1.append(a[:1] == b[:1])
        out["hybrid_overlap@10"] = round(float(np.mean(overlap)), 4)
        out["hybrid_top1_same"] = round(float(np.mean(top1)), 4)
    # With embedding: the model's own cost on top (loaded here, after the rest).
    from index.embedder import SentenceTransformerEmbedder
    from index.records import RerankSettings

    index.embedder = SentenceTransformerEmbedder()
    index.embed("warm up")
    index.queries.clear()
    # The first stage only: the synthetic passages store no token vectors, so
    # the re-reading would embed its candidates (a backend without them).
    first = RerankSettings(0)
    out["search_embedding"] = ms(
        timed(lambda i: search(index, qs[i], 10, rerank=first), rows[:EMBEDDED])
    )
    out["rss_after_model"] = rss()
    return out


def _busiest_episode(index: Any) -> str:
    counts: dict[str, int] = {}
    for doc in index.documents.values():
        if doc.get("episode"):
            counts[doc["episode"]] = counts.get(doc["episode"], 0) + int(doc["passages"])
    return max(counts, key=lambda e: counts[e])


def compare(path: Path, sample: int) -> list[dict[str, Any]]:
    """HNSW settings against IVF-Flat on the dense ranking alone (depth 100,
    one thread): build CPU seconds, p50 and recall@10 against exact, over the
    first ``sample`` vectors of ``path`` (all when 0)."""
    import faiss

    from index import ann

    faiss.omp_set_num_threads(1)
    vectors = np.load(path / "vectors.npy", mmap_mode="r")
    vectors = np.ascontiguousarray(vectors[:sample] if sample else vectors)
    n, d = vectors.shape
    qs = np.load(QVECS)[:300]
    exact = ann.Dense(vectors)
    truth = [[r for r, _ in exact.search(q, 100)] for q in qs]
    out = []

    def measure(name: str, index: Any, cpu: float, **knobs: int) -> None:
        lat, rec = [], []
        for q, t in zip(qs, truth, strict=True):
            a = time.perf_counter()
            _, ids = index.search(q[None, :], 100)
            lat.append(time.perf_counter() - a)
            rec.append(ann.recall_at(list(ids[0]), t))
        row = {"index": name, "passages": n, "build_cpu_s": round(cpu, 1), **knobs}
        row |= {"p50_ms": round(statistics.median(lat) * 1000, 3), "recall@10": np.mean(rec)}
        print(json.dumps(row), file=sys.stderr)
        out.append(row)

    for m, efc in [(16, 40), (32, 40), (32, 100)]:
        c = time.process_time()
        index: Any = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = efc
        index.add(vectors)
        cpu = time.process_time() - c
        for ef in (64, 128, 256):
            index.hnsw.efSearch = ef
            measure(f"HNSW{m},efC{efc}", index, cpu, efSearch=ef)
    c = time.process_time()
    sq8 = ann.build(vectors, threads=1)  # what podcite builds: HNSW over 8-bit codes
    cpu = time.process_time() - c
    dense = ann.Dense(vectors, sq8)

    class Reranked:  # podcite's search: the beam's best 2n re-ranked exactly
        def search(self, x: Any, k: int) -> tuple[None, Any]:
            return None, np.array([[r for r, _ in dense.search(x[0], k)]])

    for ef in (256, 512):
        ann.EF_SEARCH = ef
        measure(f"HNSW{ann.M},efC{ann.EF_CONSTRUCTION},SQ8+rerank", Reranked(), cpu, efSearch=ef)
    nlist = int(4 * np.sqrt(n))
    c = time.process_time()
    ivf: Any = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    pick = np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)
    ivf.train(vectors[np.sort(pick)])
    ivf.add(vectors)
    cpu = time.process_time() - c
    for nprobe in (16, 32, 64, 128):
        ivf.nprobe = nprobe
        measure(f"IVF{nlist},Flat", ivf, cpu, nprobe=nprobe)
    return out


def bm25_costs(path: Path) -> dict[str, Any]:
    """BM25's own costs over 100 questions: scoring every row (bm25s's
    np.add.at, which podcite uses, against a fancy-indexed add) and a term's
    ceiling for weighted fusion (a full score array per term, as podcite did,
    against the posting list's maximum, as it does now)."""
    from index.keyword import load_keyword_index

    kw = load_keyword_index(path / "bm25")
    assert kw is not None
    qs = questions()[20:120]
    data, indices, indptr = kw._postings()

    def fancy(q: str) -> None:
        scores = np.zeros(kw.size, dtype=np.float32)
        for t in kw.query_ids(q):
            a, b = int(indptr[t]), int(indptr[t + 1])
            scores[indices[a:b]] += data[a:b]

    def cost(f: Any, items: list[Any]) -> dict[str, float]:
        c = time.process_time()
        out = ms(timed(f, items))
        return {**out, "cpu_ms": round((time.process_time() - c) / len(items) * 1000, 3)}

    for q in qs:
        kw.scores(q)  # postings in the page cache
    terms = sorted({t for q in qs for t in kw.query_ids(q)})[:200]
    return {
        "passages": kw.size,
        "postings": int(indptr[-1]),
        "scores np.add.at (bm25s)": cost(kw.scores, qs),
        "scores fancy-indexed add": cost(fancy, qs),
        "ceiling, full score array": cost(
            lambda t: float(kw.bm25.get_scores_from_ids([t]).max()), terms
        ),
        "ceiling, posting-list max": cost(
            lambda t: float(data[int(indptr[t]) : int(indptr[t + 1])].max(initial=0.0)), terms
        ),
    }


def run_child(path: Path, mode: str, n: int, cold: bool = False) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(path), mode, str(n)]
    cmd += ["--cold"] if cold else []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if r.returncode:
        raise SystemExit(f"{path} {mode}: {r.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("indexes", type=Path, nargs="*")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--modes", nargs="+", default=["flat", "hnsw"])
    ap.add_argument("--out", type=Path, default=Path("/tmp/scale/ann.json"))
    ap.add_argument("--child", nargs=3, metavar=("INDEX", "MODE", "N"))
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--bm25", action="store_true", help="BM25 scoring and ceiling costs")
    ap.add_argument("--compare", type=int, metavar="SAMPLE", help="HNSW vs IVF on the vectors")
    args = ap.parse_args()
    if args.bm25:
        for path in args.indexes:
            print(json.dumps(bm25_costs(path)))
        return
    if args.compare is not None:
        for path in args.indexes:
            rows = compare(path, args.compare)
            args.out.write_text(json.dumps(rows, indent=1))
        return
    if args.child:
        path, mode, n = args.child
        print(json.dumps(child(Path(path), mode, int(n), args.cold)))
        return
    query_vectors(questions())
    results = []
    for path in args.indexes:
        for r in range(args.rounds):
            for mode in args.modes:
                res = run_child(path, mode, args.n)
                res["round"] = r
                results.append(res)
                print(json.dumps(res), file=sys.stderr)
        for mode in args.modes:
            res = run_child(path, mode, args.n, cold=True)
            results.append(res)
            print(json.dumps(res), file=sys.stderr)
        args.out.write_text(json.dumps(results, indent=1))
    print(f"load average: {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()
