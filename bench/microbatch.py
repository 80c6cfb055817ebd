"""Does micro-batching pay?  Embedding B concurrent questions in one forward
pass against embedding them one by one, with the onnx backend (issue 10).

A server that micro-batches waits a moment for questions arriving together
and embeds them in one padded batch.  That pays only if a batch of B costs
clearly less than B single passes on these cores.  Measured here directly,
on distinct syn_test/relevant questions, for B = 4 and 16 (the issue's 4 and
16 clients) and a baseline of 1:

- ``single``: B calls of ``encode([q])`` on one thread (what each search
  thread does now), and the same split over 2 threads (two searches at once,
  as the server's two search threads run them);
- ``batch``: one ``encode(qs)`` call of B questions (padded to the longest),
  on 1 and on 2 ONNX Runtime threads.

Rounds are interleaved; the figure is milliseconds per question (median over
rounds) and the batch's gain over the best single-question way.

    .venv/bin/python bench/microbatch.py [--rounds 5] [--backend onnx|torch]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from index.embedder import SentenceTransformerEmbedder

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "data" / "eval"


def questions() -> list[str]:
    names = ("syn_test.jsonl", "relevant_qs.jsonl", "irrelevant_qs.jsonl")
    qs = [json.loads(x)["question"] for n in names for x in (EVAL / n).open() if x.strip()]
    return list(dict.fromkeys(qs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--backend", choices=["onnx", "torch"], default="onnx")
    ap.add_argument("--per-round", type=int, default=96, help="questions per round and way")
    args = ap.parse_args()
    one = SentenceTransformerEmbedder(backend=args.backend, threads=1)
    two = SentenceTransformerEmbedder(backend=args.backend, threads=2)
    for e in (one, two):
        e.encode(["warm up"])
        e.encode(["warm up", "a batch to warm up with"])
    qs = questions()
    pool = ThreadPoolExecutor(2)
    results: dict[str, list[float]] = {}
    cursor = 0
    for _ in range(args.rounds):
        for b in (1, 4, 16):
            n = args.per_round - args.per_round % b
            ways = {
                f"B={b:2d} single, 1 thread": lambda g: [one.encode([q]) for q in g],
                f"B={b:2d} single, 2 searches at once": lambda g: list(
                    pool.map(lambda q: one.encode([q]), g)
                ),
                f"B={b:2d} batch, 1 thread": lambda g: one.encode(g, batch_size=len(g)),
                f"B={b:2d} batch, 2 threads": lambda g: two.encode(g, batch_size=len(g)),
            }
            for name, way in ways.items():
                batch = qs[cursor : cursor + n]
                cursor = (cursor + n) % (len(qs) - n)
                t0 = time.perf_counter()
                for i in range(0, n, b):
                    way(batch[i : i + b])
                results.setdefault(name, []).append((time.perf_counter() - t0) * 1000 / n)
    print(f"{args.backend}, {args.rounds} rounds of {args.per_round} questions per way")
    for name, per in results.items():
        print(f"  {name}: {statistics.median(per):.2f} ms per question "
              f"(rounds {', '.join(f'{x:.2f}' for x in per)})")  # fmt: skip
    for b in (4, 16):
        best_single = min(
            statistics.median(v) for k, v in results.items() if k.startswith(f"B={b:2d} single")
        )
        best_batch = min(
            statistics.median(v) for k, v in results.items() if k.startswith(f"B={b:2d} batch")
        )
        print(f"  B={b}: batch/single time per question {best_batch / best_single:.2f}")


if __name__ == "__main__":
    main()
