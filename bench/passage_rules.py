"""Which passage rule retrieves the evidence sentence best?

Compares podcite's passage rules (with and without the title/heading context
in the embedded text) against a plain fixed-size 500-character chunker, on
eval/wiki_questions.jsonl.  A hit is a passage (or chunk) whose source span
contains the evidence sentence's first character.  Corpus: the seed, every
shared page a question names, and a fixed random sample of other shared pages
as distractors.

    .venv/bin/python bench/passage_rules.py [--distractors 300]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index import SentenceTransformerEmbedder
from ingest import load, passages
from ingest.lines import read_text

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Unit:
    path: str
    start: int
    end: int
    text: str


def source_path(src: str) -> Path:
    if src.startswith("shared:"):
        return (SHARED / src.removeprefix("shared:")).resolve()
    return (ROOT / src).resolve()


def fixed_chunks(path: Path, size: int = 500) -> list[Unit]:
    text, _ = read_text(path)
    return [
        Unit(str(path.resolve()), a, a + size, text[a : a + size])
        for a in range(0, len(text), size)
    ]


def rank_metrics(ranked: list[list[bool]]) -> dict[str, float]:
    def first(r: list[bool]) -> int | None:
        return next((i for i, hit in enumerate(r) if hit), None)

    firsts = [first(r) for r in ranked]
    n = len(ranked)
    return {
        "hit@1": sum(f == 0 for f in firsts) / n,
        "hit@5": sum(f is not None and f < 5 for f in firsts) / n,
        "MRR@10": sum(1 / (f + 1) for f in firsts if f is not None and f < 10) / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--distractors", type=int, default=300)
    args = ap.parse_args()
    questions = [json.loads(line) for line in (ROOT / "eval" / "wiki_questions.jsonl").open()]
    named = {source_path(e["source"]) for q in questions for e in q["evidence"]}
    pool = sorted(p.resolve() for p in (SHARED / "wiki" / "hubermanlab").glob("*.md"))
    pool = [p for p in pool if p not in named and p.name != "hubermanlab.md"]
    files = sorted(named) + random.Random(7).sample(pool, args.distractors)
    loaded = load(
        [
            *files,
            SHARED / "wiki" / "hubermanlab" / "hubermanlab.md",
            ROOT / "corpus" / "catalog.csv",
        ]
    )
    docs = loaded.documents
    embedder = SentenceTransformerEmbedder()
    qvec = embedder.encode([q["question"] for q in questions])
    gold = [[(str(source_path(e["source"])), e["char"]) for e in q["evidence"]] for q in questions]

    def units_for(rule: str) -> list[tuple[Unit, str]]:
        if rule == "fixed500":
            return [(u, u.text) for f in files for u in fixed_chunks(f)]
        base, _, ctx = rule.partition("+")
        out = []
        for d in docs:
            for p in passages(d, rule=base):  # type: ignore[arg-type]
                unit = Unit(str(Path(d.path).resolve()), p.start, p.end, p.text)
                out.append((unit, p.embed_text() if ctx else p.text))
        return out

    rows = []
    for rule in [
        "fixed500",
        "sentence",
        "sentence+ctx",
        "window3+ctx",
        "paragraph",
        "paragraph+ctx",
    ]:
        units = units_for(rule)
        t0 = time.perf_counter()
        vecs = embedder.encode([t for _, t in units])
        secs = time.perf_counter() - t0
        scores = qvec @ vecs.T
        ranked = []
        for qi, g in enumerate(gold):
            top = np.argsort(-scores[qi])[:10]
            ranked.append(
                [
                    any(
                        units[i][0].path == path and units[i][0].start <= c < units[i][0].end
                        for path, c in g
                    )
                    for i in top
                ]
            )
        m = rank_metrics(ranked)
        rows.append((rule, len(units), secs, m))
        print(
            f"{rule:15s} units={len(units):6d} embed={secs:6.1f}s  "
            + "  ".join(f"{k}={v:.3f}" for k, v in m.items()),
            flush=True,
        )
    print(
        f"\n{len(questions)} questions, {len(files)} files "
        f"({len(named)} named + {args.distractors} distractors)"
    )


if __name__ == "__main__":
    main()
