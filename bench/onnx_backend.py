"""Query embedding and ingest, ONNX int8 against torch; quality over one index.

One index is built with torch (every wiki page, the channel page and the
transcripts of EPISODES episodes: the six of the quality gate's moment
questions, then the first by YouTube id), then:

- ``query``: ``embedder.encode([q])`` for 200 syn_test questions, in process,
  rounds interleaved torch/onnx/torch/onnx so the other load on a shared
  machine falls on both alike; per round p50/p95, reported as medians and the
  torch/onnx ratio of each round's p50.  Also the whole in-process ``search``
  (hybrid), which includes the embedding.
- ``ingest``: ``encode_spans`` (what a build runs) over a fixed set of passages
  (300 wiki passages, 100 transcript model windows), rounds interleaved.
- ``quality``: every question set against the same index, its queries embedded
  by torch and by onnx: hit@1, MRR@10, abstention AUC; and the cosine between
  the two backends' query vectors.

    .venv/bin/python bench/onnx_backend.py build  [--out /tmp/podcite-bench-onnx] [--backend onnx]
    .venv/bin/python bench/onnx_backend.py query | ingest | quality  [--rounds 5]
    for b in torch onnx torch onnx torch onnx; do
        .venv/bin/python bench/onnx_backend.py solo --backend $b; done
    .venv/bin/python bench/onnx_backend.py quality --index index-onnx  (the onnx-built index)
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from index import SentenceTransformerEmbedder, build, open_index, search
from index.embedder import Backend
from index.evaluate import run_eval
from index.vectors import embed_input
from ingest import load, passages
from ingest.windows import model_windows

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
EVAL = SHARED / "eval"
OUT = Path("/tmp/podcite-bench-onnx")
EPISODES = 20
CACHE = OUT / "model-cache"


def subset() -> list[Path]:
    with (SHARED / "catalog" / "transcripts.csv").open(encoding="utf-8") as fh:
        files = {r["youtube_id"]: r["file"] for r in csv.DictReader(fh)}
    moments = [json.loads(x) for x in (ROOT / "eval" / "moment_questions.jsonl").open()]
    episodes = sorted({m["video_id"] for m in moments})[:6]
    episodes += [e for e in sorted(files) if e not in episodes][: EPISODES - len(episodes)]
    return [
        *sorted((SHARED / "wiki" / "hubermanlab").glob("*.md")),
        *(SHARED / "transcripts" / files[e] for e in episodes),
        SHARED / "catalog" / "transcripts.csv",
    ]


def embedders() -> dict[Backend, SentenceTransformerEmbedder]:
    out: dict[Backend, SentenceTransformerEmbedder] = {
        "torch": SentenceTransformerEmbedder(backend="torch"),
        "onnx": SentenceTransformerEmbedder(backend="onnx", cache_dir=CACHE),
    }
    for e in out.values():
        e.encode(["warm up"])
    return out


def cmd_build(out: Path, backend: Backend) -> None:
    dest = out / ("index" if backend == "torch" else f"index-{backend}")
    if dest.exists():
        print(f"{dest} exists")
        return
    loaded = load(subset())
    emb = SentenceTransformerEmbedder(backend=backend, cache_dir=CACHE)
    t0 = time.perf_counter()
    report = build(loaded.documents, dest, emb, catalog_files=loaded.catalog_files)
    print(
        f"built {report.documents} documents, {report.passages} passages, "
        f"{report.sentences} sentences with {backend} in {time.perf_counter() - t0:.0f} s"
    )


def syn_questions(n: int = 200) -> list[str]:
    lines = (EVAL / "syn_test.jsonl").open(encoding="utf-8")
    return [json.loads(line)["question"] for line in lines][:n]


def interleaved(
    rounds: int, runs: dict[str, Callable[[], list[float]]]
) -> dict[str, list[list[float]]]:
    got: dict[str, list[list[float]]] = {k: [] for k in runs}
    for _ in range(rounds):
        for k, run in runs.items():
            got[k].append(run())
    return got


def cmd_query(out: Path, rounds: int) -> None:
    embs = embedders()
    qs = syn_questions()

    def embed_times(e: SentenceTransformerEmbedder) -> Callable[[], list[float]]:
        def run() -> list[float]:
            ts = []
            for q in qs:
                t0 = time.perf_counter()
                e.encode([q])
                ts.append((time.perf_counter() - t0) * 1000)
            return ts

        return run

    indexes = {b: open_index(out / "index", e) for b, e in embs.items()}

    def search_times(b: Backend) -> Callable[[], list[float]]:
        def run() -> list[float]:
            ts = []
            for q in qs:
                # search() may keep a query cache; every question is embedded afresh
                getattr(indexes[b], "extras", {}).get("query_cache", {}).clear()
                t0 = time.perf_counter()
                search(indexes[b], q, 5, mode="hybrid")
                ts.append((time.perf_counter() - t0) * 1000)
            return ts

        return run

    for label, runs in (
        ("encode([q])", {b: embed_times(e) for b, e in embs.items()}),
        ("search hybrid, k=5", {b: search_times(b) for b in embs}),
    ):
        got = interleaved(rounds, runs)
        p50 = {b: [float(np.percentile(r, 50)) for r in rs] for b, rs in got.items()}
        p95 = {b: [float(np.percentile(r, 95)) for r in rs] for b, rs in got.items()}
        ratio = [t / o for t, o in zip(p50["torch"], p50["onnx"], strict=True)]
        print(f"{label}: {len(qs)} questions x {rounds} rounds")
        for b in embs:
            print(
                f"  {b}: p50 {statistics.median(p50[b]):.2f} ms (rounds "
                f"{', '.join(f'{x:.2f}' for x in p50[b])}), "
                f"p95 {statistics.median(p95[b]):.2f} ms"
            )
        print(f"  torch/onnx p50 ratio per round: {', '.join(f'{x:.2f}' for x in ratio)}")


def cmd_solo(backend: Backend) -> None:
    """One backend alone in this process (no other model's threads beside it):
    run it alternately, ``for b in torch onnx torch onnx; do ... solo --backend $b``."""
    emb = SentenceTransformerEmbedder(backend=backend, cache_dir=CACHE)
    emb.encode(["warm up"])
    ts = []
    for q in syn_questions():
        t0 = time.perf_counter()
        emb.encode([q])
        ts.append((time.perf_counter() - t0) * 1000)
    p50, p95 = np.percentile(ts, [50, 95])
    print(f"{backend} alone: encode([q]) p50 {p50:.2f} ms, p95 {p95:.2f} ms")


def ingest_inputs() -> list[tuple[str, list[tuple[int, int]]]]:
    loaded = load(subset())
    wiki = [p for d in loaded.documents if d.kind == "wiki" for p in passages(d)]
    wiki = wiki[:: max(1, len(wiki) // 300)][:300]
    transcripts = [d for d in loaded.documents if d.kind == "transcript"]
    windows = model_windows(transcripts[0])[:100]
    return [embed_input(p) for p in wiki] + [embed_input(w) for w in windows]


def cmd_ingest(rounds: int) -> None:
    inputs = ingest_inputs()
    embs = embedders()
    texts = [t for t, _ in inputs]
    spans = [s for _, s in inputs]
    parts = {"wiki passages": slice(0, 300), "transcript windows": slice(300, None)}

    def run(e: SentenceTransformerEmbedder, part: slice) -> Callable[[], list[float]]:
        def go() -> list[float]:
            t0 = time.perf_counter()
            e.encode_spans(texts[part], spans[part])
            return [len(texts[part]) / (time.perf_counter() - t0)]

        return go

    for name, part in parts.items():
        got = interleaved(rounds, {b: run(e, part) for b, e in embs.items()})
        rate = {b: [r[0] for r in rs] for b, rs in got.items()}
        ratio = [o / t for t, o in zip(rate["torch"], rate["onnx"], strict=True)]
        chars = statistics.median(len(t) for t in texts[part])
        print(
            f"encode_spans, {len(texts[part])} {name} (median {chars:.0f} chars), {rounds} rounds"
        )
        for b in embs:
            print(
                f"  {b}: {statistics.median(rate[b]):.1f} passages/s "
                f"(rounds {', '.join(f'{x:.1f}' for x in rate[b])})"
            )
        print(f"  onnx/torch per round: {', '.join(f'{x:.2f}' for x in ratio)}")
    torch_out, onnx_out = (embs[b].encode_spans(texts, spans) for b in ("torch", "onnx"))
    pt, st = torch_out.passages, torch_out.sentences
    po, so = onnx_out.passages, onnx_out.sentences
    cos = np.einsum("ij,ij->i", pt, po)
    scos = np.concatenate([np.einsum("ij,ij->i", a, b) for a, b in zip(st, so, strict=True)])
    print(
        f"passage vectors torch·onnx: min {cos.min():.4f}, median {np.median(cos):.4f}; "
        f"pooled sentences: min {scos.min():.4f}, median {np.median(scos):.4f}"
    )


SETS: list[tuple[str, list[Path], dict[str, Any]]] = [
    ("syn_test", [EVAL / "syn_test.jsonl"], {}),
    ("qna_test", [EVAL / "qna_test.jsonl"], {}),
    (
        "relevant/irrelevant (audited)",
        [EVAL / "relevant_qs.jsonl", EVAL / "irrelevant_qs.jsonl"],
        {"audit": ROOT / "eval" / "scope_audit.jsonl"},
    ),
    (
        "relevant/irrelevant (files' labels)",
        [EVAL / "relevant_qs.jsonl", EVAL / "irrelevant_qs.jsonl"],
        {},
    ),
    ("wiki_questions", [ROOT / "eval" / "wiki_questions.jsonl"], {}),
    ("moment_questions", [ROOT / "eval" / "moment_questions.jsonl"], {}),
    (
        "out_of_scope (+ wiki, moment)",
        [
            ROOT / "eval" / "out_of_scope.jsonl",
            ROOT / "eval" / "wiki_questions.jsonl",
            ROOT / "eval" / "moment_questions.jsonl",
        ],
        {},
    ),
]


def cmd_quality(out: Path, modes: list[str], index: str) -> None:
    """Both backends' queries over ``out/index`` (built with torch); with
    ``--index index-onnx``, the index built with onnx instead."""
    embs = embedders()
    indexes = {b: open_index(out / index, e) for b, e in embs.items()}
    print(
        "| question set | mode | n | hit@1 torch | hit@1 onnx | MRR@10 torch | MRR@10 onnx "
        "| AUC torch | AUC onnx |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name, paths, kw in SETS:
        for mode in modes:
            r = {b: run_eval(idx, paths, mode, **kw) for b, idx in indexes.items()}

            def f(b: str, group: str, key: str, r: dict[str, Any] = r) -> str:
                v = getattr(r[b], group).get(key)
                return "-" if v is None else f"{v:.3f}"

            print(
                f"| {name} | {mode} | {r['torch'].questions} | {f('torch', 'metrics', 'hit@1')} "
                f"| {f('onnx', 'metrics', 'hit@1')} | {f('torch', 'metrics', 'mrr@10')} "
                f"| {f('onnx', 'metrics', 'mrr@10')} | {f('torch', 'abstention', 'auc')} "
                f"| {f('onnx', 'abstention', 'auc')} |",
                flush=True,
            )
            rows.append((name, mode, {b: x.to_dict() for b, x in r.items()}))
    (out / "quality.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    qs = [
        json.loads(line)["question"]
        for p in [EVAL / "syn_test.jsonl", EVAL / "relevant_qs.jsonl", EVAL / "irrelevant_qs.jsonl"]
        for line in p.open(encoding="utf-8")
    ]
    cos = np.array([float(embs["torch"].encode([q])[0] @ embs["onnx"].encode([q])[0]) for q in qs])
    print(
        f"query vectors torch·onnx over {len(qs)} questions: min {cos.min():.4f}, "
        f"1st percentile {np.percentile(cos, 1):.4f}, median {np.median(cos):.4f}"
    )


def cmd_compare(
    torch_index: Path, onnx_index: Path, modes: list[str], out: Path, sets: list[str]
) -> None:
    """Whole builds against each other: the index built with torch, asked with
    torch's query vectors (today's default), against the index built with onnx,
    asked with onnx's (the candidate default); and, between them, the torch-built
    index asked with onnx (onnx for queries only).  hit@1, MRR@10 and abstention
    AUC on every question set and mode, and which questions change at hit@1."""
    torch_e = SentenceTransformerEmbedder(backend="torch")
    onnx_e = SentenceTransformerEmbedder(backend="onnx", threads=1)
    configs = {
        "torch": open_index(torch_index, torch_e),
        "onnx queries": open_index(torch_index, onnx_e),
        "onnx": open_index(onnx_index, onnx_e),
    }
    for idx in configs.values():  # a question's vector once for every mode and set
        idx.queries.size = 100_000
    names = list(configs)
    head = " | ".join(f"{m} {c}" for m in ("hit@1", "MRR@10", "AUC") for c in names)
    print(f"| question set | mode | n | {head} |")
    print("|---|---|---|" + "---|" * (3 * len(names)))
    rows = []
    for name, paths, kw in SETS:
        if sets and name not in sets:
            continue
        for mode in modes:
            r = {c: run_eval(idx, paths, mode, **kw) for c, idx in configs.items()}

            def f(c: str, group: str, key: str, r: dict[str, Any] = r) -> str:
                v = getattr(r[c], group).get(key)
                return "-" if v is None else f"{v:.3f}"

            cells = [f(c, g, k) for g, k in (("metrics", "hit@1"), ("metrics", "mrr@10"),
                                             ("abstention", "auc")) for c in names]  # fmt: skip
            print(f"| {name} | {mode} | {r['torch'].questions} | {' | '.join(cells)} |", flush=True)
            dicts = {c: x.to_dict(per_question=True) for c, x in r.items()}
            rows.append((name, mode, dicts))
            changed = _changed_at_1(dicts["torch"], dicts["onnx"])
            if changed:
                print(f"    hit@1 torch -> onnx changed: {changed}", flush=True)
    name = "compare.json" if not sets else f"compare-{len(rows)}.json"
    (out / name).write_text(json.dumps(rows, indent=1), encoding="utf-8")


def _changed_at_1(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Question ids whose first result hits under one and not the other (+: onnx gains)."""

    def firsts(d: dict[str, Any]) -> dict[str, bool]:
        return {o["id"]: bool(o["hits"][:1] and o["hits"][0]) for o in d.get("outcomes", [])}

    fa, fb = firsts(a), firsts(b)
    return [("+" if fb[q] else "-") + q for q in fa if q in fb and fa[q] != fb[q]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["build", "query", "solo", "ingest", "quality", "compare"])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--modes", default="dense,hybrid")
    ap.add_argument(
        "--backend", choices=["torch", "onnx"], default="torch", help="build or solo with"
    )
    ap.add_argument("--index", default="index", help="quality: the index folder under --out")
    ap.add_argument("--torch-index", type=Path, help="compare: an index built with torch")
    ap.add_argument("--onnx-index", type=Path, help="compare: the same library built with onnx")
    ap.add_argument("--sets", default="", help="compare: only these question sets (;-separated)")
    args = ap.parse_args()
    if args.what == "build":
        cmd_build(args.out, args.backend)
    elif args.what == "query":
        cmd_query(args.out, args.rounds)
    elif args.what == "solo":
        cmd_solo(args.backend)
    elif args.what == "ingest":
        cmd_ingest(args.rounds)
    elif args.what == "compare":
        args.out.mkdir(parents=True, exist_ok=True)
        sets = args.sets.split(";") if args.sets else []
        cmd_compare(args.torch_index, args.onnx_index, args.modes.split(","), args.out, sets)
    else:
        cmd_quality(args.out, args.modes.split(","), args.index)


if __name__ == "__main__":
    main()
