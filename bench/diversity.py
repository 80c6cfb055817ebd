"""Duplicate moments in a result list: collapse (podcite's rule) against MMR.

Every strategy re-orders the same hybrid candidate pool (the top 50 of the
default ranking) of each question:

- none: the pool as ranked;
- collapse: drop a result that shows the same moment as a better one (same
  document and best sentence, or overlapping transcript windows): what
  ``index.search.search`` does;
- mmr λ: maximal marginal relevance, greedily the candidate maximising
  λ·fused score − (1−λ)·its highest cosine to a result already taken;
- collapse + mmr λ.

Reported: hit@1, hit@5 and MRR@10 (the gold of ``podcite eval``), and the share
of top-5 lists holding two results that show the same moment.

    .venv/bin/python bench/diversity.py --index /tmp/podcite-full
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from index import Hit, Index, SentenceTransformerEmbedder, open_index
from index.metrics import retrieval_metrics
from index.questions import Question, judge, read_questions
from index.rank import ranking
from index.search import distinct, hit_at, same_moment

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
POOL = 50
K = 10

Strategy = Callable[[Index, list[Hit], list[float]], list[Hit]]


def collapse(index: Index, hits: list[Hit], fused: list[float]) -> list[Hit]:
    return distinct(hits)


def mmr(lam: float) -> Strategy:
    def order(index: Index, hits: list[Hit], fused: list[float]) -> list[Hit]:
        vecs = index.backend.vectors[[h.row for h in hits]]  # type: ignore[attr-defined]
        rel = np.array(fused, dtype=np.float32)
        sim = vecs @ vecs.T
        taken: list[int] = []
        left = list(range(len(hits)))
        while left and len(taken) < K:
            if taken:
                red = sim[np.ix_(left, taken)].max(axis=1)
            else:
                red = np.zeros(len(left), dtype=np.float32)
            best = left[int(np.argmax(lam * rel[left] - (1 - lam) * red))]
            taken.append(best)
            left.remove(best)
        return [hits[i] for i in taken]

    return order


def both(lam: float) -> Strategy:
    def order(index: Index, hits: list[Hit], fused: list[float]) -> list[Hit]:
        kept = collapse(index, hits, fused)
        pos = {id(h): i for i, h in enumerate(hits)}
        return mmr(lam)(index, kept, [fused[pos[id(h)]] for h in kept])

    return order


STRATEGIES: dict[str, Strategy] = {
    "none": lambda index, hits, fused: hits,
    "collapse (default)": collapse,
    "mmr 0.7": mmr(0.7),
    "mmr 0.85": mmr(0.85),
    "collapse + mmr 0.85": both(0.85),
}


def pool(index: Index, q: Question) -> tuple[list[Hit], list[float]]:
    v = index.embed(q.text)
    ranked = ranking(index, q.text, v, POOL, mode="hybrid").ranked
    hits = [hit_at(index, r.row, r.cosine, v) for r in ranked]
    return hits, [r.fused for r in ranked]


def duplicated(hits: list[Hit]) -> bool:
    top = hits[:5]
    return any(same_moment(a, b) for i, a in enumerate(top) for b in top[i + 1 :])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    args = ap.parse_args()
    index = open_index(args.index, SentenceTransformerEmbedder())
    episodes = {d["episode"] for d in index.documents.values() if d["kind"] == "transcript"}
    sets = {
        "syn_test (transcript episodes)": [
            q for q in read_questions(SHARED / "eval" / "syn_test.jsonl") if q.video_id in episodes
        ],
        "ours (wiki + moments)": [
            *read_questions(ROOT / "eval" / "wiki_questions.jsonl"),
            *read_questions(ROOT / "eval" / "moment_questions.jsonl"),
        ],
    }
    for name, questions in sets.items():
        pools = [pool(index, q) for q in questions]
        print(f"\n{name}: {len(questions)} questions")
        print("| strategy | hit@1 | hit@5 | MRR@10 | top-5 lists with a repeated moment |")
        print("|---|---|---|---|---|")
        for label, strategy in STRATEGIES.items():
            flags: dict[str, list[bool]] = {}
            dup = 0
            for q, (hits, fused) in zip(questions, pools, strict=True):
                out = strategy(index, hits, fused)[:K]
                flags[q.id] = [judge(q, h)[0] for h in out]
                dup += duplicated(out)
            m = retrieval_metrics(flags, K)
            scores = " | ".join(f"{m[name]:.3f}" for name in ("hit@1", "hit@5", "mrr@10"))
            print(f"| {label} | {scores} | {dup / len(questions):.2f} |")


if __name__ == "__main__":
    main()
