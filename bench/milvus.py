"""FAISS + bm25s against Milvus Lite on one built index: the same stored vectors
published into a Milvus collection (nothing re-embedded), then `podcite eval`'s
own evaluation on both, file by file, the backends interleaved.

    .venv/bin/python bench/milvus.py --index /work/lib/index --db /tmp/lib.db \
        ../shared/data/eval/syn_test.jsonl eval/wiki_questions.jsonl eval/moment_questions.jsonl

Prints one JSON line per (file, backend): questions, hit@1, MRR@10, search p50/p99
(search() alone, the question's embedding timed apart), and the publish figures
(seconds, rows/s, bytes on disk per passage, JSON record and token bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--mode", default="hybrid")
    ap.add_argument("--publish", action="store_true", help="publish even if the db exists")
    ap.add_argument("files", type=Path, nargs="+")
    args = ap.parse_args()

    from index import milvus_store as ms
    from index import open_index, store
    from index.embedder import SentenceTransformerEmbedder
    from index.evaluate import evaluate
    from index.milvus import open_milvus_index
    from index.questions import read_questions
    from index.search import search

    embedder = SentenceTransformerEmbedder()
    if args.publish or not args.db.exists():
        stored = store.load(args.index, verify=False, searchable=False)
        rows = list(ms.rows_of(stored))
        n = len(rows)
        record = np.mean([len(json.dumps(r["record"], ensure_ascii=False).encode()) for r in rows])
        tokens = np.mean([len(r["tokens"].encode()) for r in rows])
        sentences = stored.sentence_vectors.shape[0] / n
        del rows
        mc = ms.client(str(args.db))
        t0 = time.perf_counter()
        ms.publish(mc, "lib", stored)
        seconds = time.perf_counter() - t0
        mc.close()
        print(
            json.dumps(
                {
                    "publish": {
                        "passages": n,
                        "seconds": round(seconds, 1),
                        "rows/s": round(n / seconds),
                        "db bytes/passage": round(disk_bytes(args.db) / n),
                        "faiss dir bytes/passage": round(disk_bytes(args.index.resolve()) / n),
                        "record json bytes/passage": round(float(record)),
                        "tokens bytes/passage": round(float(tokens)),
                        "sentences/passage": round(sentences, 2),
                    }
                }
            ),
            flush=True,
        )
    faiss_index = open_index(args.index, embedder, verify=False)
    milvus_index = open_milvus_index(str(args.db), "lib", embedder)
    for idx in (faiss_index, milvus_index):  # warm both (model, caches, Milvus load)
        for q in ("warm up", "sleep and light"):
            search(idx, q, 5)
        idx.queries.clear()
    for f in args.files:
        questions = read_questions(f)
        for name, idx in (("faiss", faiss_index), ("milvus-lite", milvus_index)):
            rep = evaluate(idx, questions, mode=args.mode, source=f.name)
            ms_ = [o.search_ms for o in rep.outcomes]
            print(
                json.dumps(
                    {
                        "file": f.name,
                        "backend": name,
                        "questions": rep.questions,
                        "hit@1": rep.metrics.get("hit@1"),
                        "mrr@10": rep.metrics.get("mrr@10"),
                        "search p50 ms": round(float(np.percentile(ms_, 50)), 2) if ms_ else None,
                        "search p99 ms": round(float(np.percentile(ms_, 99)), 2) if ms_ else None,
                        "top1": [o.hits[:1] == [True] for o in rep.outcomes],
                    }
                ),
                flush=True,
            )
    os._exit(0)  # Milvus Lite's server thread would keep the process alive


if __name__ == "__main__":
    main()
