"""Transcript window length and overlap, measured.

Builds a transcript-only index of the shared transcripts (all 92 by default)
for each window choice and scores it with the real search (default hybrid) on
(a) the shared syn_test rows of those episodes (hit: a result of the right
episode whose cited moment falls in the gold chapter) and (b) our moment
questions (hit: a cited moment no more than 30 s before the answer starts and
not after it ends).  Every choice is built into the same folder, so only the
first embeds anything: windows are pooled from sentence vectors
(index/vectors.py) and a new choice reuses them.

``--fidelity N``: for N random windows of the default choice, the cosine
between the pooled vector and the model's own vector of the window's text.

    .venv/bin/python bench/windows.py [--episodes 92] [--fidelity 500]
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from pathlib import Path

import numpy as np

from index import Index, SentenceTransformerEmbedder, build, open_index, search
from index.metrics import retrieval_metrics
from index.questions import Question, judge, read_questions
from ingest import load

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
CHOICES = [(60.0, 30.0), (30.0, 15.0), (45.0, 15.0), (60.0, 60.0), (90.0, 30.0), (90.0, 45.0)]
OUT = Path("/tmp/podcite-bench-windows")


def metrics(index: Index, questions: list[Question]) -> str:
    flags = {q.id: [judge(q, h)[0] for h in search(index, q.text, 10)] for q in questions}
    m = retrieval_metrics(flags)
    return f"{m['hit@1']:.3f} | {m['hit@5']:.3f} | {m['mrr@10']:.3f}"


def fidelity(index: Index, emb: SentenceTransformerEmbedder, n: int) -> None:
    passages = index.backend.passages()  # type: ignore[attr-defined]
    rows = [i for i, p in enumerate(passages) if p.kind == "transcript"]
    rows = random.Random(0).sample(rows, min(n, len(rows)))
    texts = [passages[i].embed_text() for i in rows]
    own = emb.encode(texts)
    cos = np.einsum("ij,ij->i", index.backend.vectors[rows], own)  # type: ignore[attr-defined]
    fits = np.array([emb.token_count(t) <= emb.max_tokens for t in texts])
    print(
        f"fidelity over {len(rows)} windows: mean {cos.mean():.3f}, 5th percentile "
        f"{np.percentile(cos, 5):.3f}; windows the model reads whole ({fits.sum()}): "
        f"mean {cos[fits].mean():.3f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=92)
    ap.add_argument("--fidelity", type=int, default=0)
    args = ap.parse_args()
    with (SHARED / "catalog" / "transcripts.csv").open(encoding="utf-8") as fh:
        files = {r["youtube_id"]: r["file"] for r in csv.DictReader(fh)}
    episodes = sorted(files)[: args.episodes]
    syn = [q for q in read_questions(SHARED / "eval" / "syn_test.jsonl") if q.video_id in episodes]
    moments = [
        q
        for q in read_questions(ROOT / "eval" / "moment_questions.jsonl")
        if q.video_id in episodes
    ]
    paths = [SHARED / "transcripts" / files[e] for e in episodes]
    loaded = load([*paths, SHARED / "catalog" / "transcripts.csv"])
    emb = SentenceTransformerEmbedder()
    print(f"{len(episodes)} episodes, {len(syn)} syn_test rows, {len(moments)} moment questions")
    print(
        "| window | stride | windows | build s | syn_test hit@1 | hit@5 | MRR@10 "
        "| moments hit@1 | hit@5 | MRR@10 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for window, stride in CHOICES:
        t0 = time.perf_counter()
        report = build(loaded.documents, OUT, emb, window_s=window, stride_s=stride)
        secs = time.perf_counter() - t0
        index = open_index(OUT, emb)
        print(
            f"| {window:.0f} s | {stride:.0f} s | {report.passages} | {secs:.0f} "
            f"| {metrics(index, syn)} | {metrics(index, moments)} |",
            flush=True,
        )
        if args.fidelity and (window, stride) == CHOICES[0]:
            fidelity(index, emb, args.fidelity)


if __name__ == "__main__":
    main()
