"""Calibrate and score the citation check against hand-checked citations.

Needs an index built from the shared wiki pages and transcripts together
(see docs/benchmarks.md).  For each labelled citation in
eval/citation_labels.jsonl it runs the checker with each parameter choice and
reports the precision of "confirmed" and "corrected" (a corrected time counts
only when within 30 s of where the claim is said) and the verdict counts over
every checked citation in the index.

    .venv/bin/python bench/citecheck.py --index /tmp/podcite-full
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np

from index import citecheck, store

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--grid", action="store_true", help="sweep thresholds")
    args = ap.parse_args()
    idx = store.load(args.index, verify=False, searchable=False)
    vecs = [idx.sentence_vectors_of(i).astype(np.float32) for i in range(len(idx.passages))]
    tls = citecheck.timelines(idx.passages, vecs)
    labels = [json.loads(x) for x in (ROOT / "eval" / "citation_labels.jsonl").open()]
    cases = []
    for lab in labels:
        suffix = lab["source"].removeprefix("shared:")
        for i, p in enumerate(idx.passages):
            if p.kind == "wiki" and p.path.endswith(suffix) and p.start <= lab["char"] < p.end:
                j = next(j for j, s in enumerate(p.sentences) if s.start <= lab["char"] < s.end)
                s = p.sentences[j]
                assert s.time is not None
                cases.append((lab, tls[lab["video_id"]], s.time.seconds, s.text, vecs[i][j]))
                break
    print(f"{len(cases)} of {len(labels)} labelled citations found in the index")

    def score(params: citecheck.Params) -> tuple[float, float, int, int, Counter[str]]:
        conf_ok = conf_n = corr_ok = corr_n = 0
        pairs: Counter[str] = Counter()
        for lab, tl, cited, text, v in cases:
            c = citecheck.check(tl, cited, text, v, params)
            pairs[f"{lab['verdict']}->{c.verdict}"] += 1
            if c.verdict == "confirmed":
                conf_n += 1
                conf_ok += lab["said_at"] is not None and abs(lab["said_at"] - cited) <= 75
            elif c.verdict == "corrected":
                corr_n += 1
                found = lab["said_at"] is not None and c.said_at is not None
                corr_ok += found and abs(c.said_at - lab["said_at"]) <= 30
        return conf_ok / max(conf_n, 1), corr_ok / max(corr_n, 1), conf_n, corr_n, pairs

    base = citecheck.Params()
    grid = [base]
    if args.grid:
        grid = [
            citecheck.Params(
                near=n, overlap_weight=w, confirm=c, correct=x, margin=m, confirm_margin=cm
            )
            for n, w, c, x, m, cm in itertools.product(
                (60, 90),
                (0.0, 0.5),
                (0.45, 0.55, 0.65),
                (0.7, 0.8, 0.9),
                (0.1, 0.2),
                (0.0, 0.05, 0.1),
            )
        ]
    rows = []
    for params in grid:
        pc, px, nc, nx, pairs = score(params)
        rows.append((pc, px, nc, nx, params, pairs))
    # Right verdicts count +1; a wrong "confirmed" -1; a wrong correction -2 (it
    # sends the listener to the wrong moment, which is worse than saying nothing).
    rows.sort(
        key=lambda r: -(r[0] * r[2] - (1 - r[0]) * r[2] + r[1] * r[3] - 2 * (1 - r[1]) * r[3])
    )
    for pc, px, nc, nx, params, pairs in rows[:8]:
        print(f"confirmed {nc:2d} (precision {pc:.2f})  corrected {nx:2d} (precision {px:.2f})")
        print(f"   {params}")
        print("   label->verdict:", dict(sorted(pairs.items())))
    if not args.grid:
        _, counts = citecheck.verify(idx.passages, vecs, base)
        print("\nevery checkable citation in the index, with these parameters:", dict(counts))


if __name__ == "__main__":
    main()
