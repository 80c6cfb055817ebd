"""Milvus's own hybrid search (its RRF and weighted rankers over the dense and
BM25 requests, one call) against podcite's weighted fusion over the same two
lists, on a published Milvus index, with `podcite eval`'s scoring.

    .venv/bin/python bench/milvus_hybrid.py --db /tmp/gate.db --alias lib FILES...

Prints hit@1 and MRR@10 per file and fusion.  The scores handed on are the
dense cosines, as podcite's rank does, so abstention is unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--alias", default="lib")
    ap.add_argument("files", type=Path, nargs="+")
    args = ap.parse_args()

    import importlib

    from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

    search_module = importlib.import_module("index.search")  # index.search is also a function
    from index import milvus_store as ms
    from index.embedder import SentenceTransformerEmbedder
    from index.evaluate import evaluate
    from index.fusion import Ranked
    from index.milvus import expression, open_milvus_index
    from index.questions import read_questions

    idx = open_milvus_index(args.db, args.alias, SentenceTransformerEmbedder())
    backend: Any = idx.backend
    original = search_module.rank

    def milvus_rank(ranker: Any) -> Any:
        def rank(  # the signature of index.rank.rank
            index: Any, query: str, q: Any, n: int, filters: Any, mode: Any, fusion: Any
        ) -> list[Any]:
            expr = expression(filters)
            dense = AnnSearchRequest([q.tolist()], "vector", {"metric_type": "IP"}, 100, expr=expr)
            tokens = " ".join(ms.milvus_tokens(query)) or "_"
            sparse = AnnSearchRequest([tokens], "sparse", {"metric_type": "BM25"}, 100, expr=expr)
            res = backend._mc.hybrid_search(
                backend.collection, [dense, sparse], ranker, limit=n, output_fields=["row"]
            )
            rows = [int(h["row"]) for h in res[0]]
            cos = backend.cosines(q, rows)
            return [Ranked(r, float(c), 0.0, 0.0) for r, c in zip(rows, cos, strict=True)]

        return rank

    fusions = {
        "podcite weighted": original,
        "milvus RRF(60)": milvus_rank(RRFRanker(60)),
        "milvus weighted(0.7, 0.3)": milvus_rank(WeightedRanker(0.7, 0.3)),
    }
    for f in args.files:
        questions = read_questions(f)
        for name, fn in fusions.items():
            search_module.rank = fn  # type: ignore[assignment]
            rep = evaluate(idx, questions, mode="hybrid", source=f.name)
            print(
                json.dumps(
                    {
                        "file": f.name,
                        "fusion": name,
                        "questions": rep.questions,
                        "hit@1": rep.metrics.get("hit@1"),
                        "mrr@10": rep.metrics.get("mrr@10"),
                        "search p50 ms": round(
                            float(np.median([o.search_ms for o in rep.outcomes])), 1
                        ),
                    }
                ),
                flush=True,
            )
    os._exit(0)


if __name__ == "__main__":
    main()
