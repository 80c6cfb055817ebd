"""Calibrate and cross-validate abstention: the best cosine, and whether the
question names something no passage of the library contains.

For every question of the shared relevant/irrelevant sets (labels audited by
eval/scope_audit.jsonl), our own sets (wiki and moment questions in scope,
eval/out_of_scope.jsonl out), eval/out_of_scope_lookalikes.jsonl and the fresh
moment (two sets) and wiki questions (in scope, held out: reported, never
pooled; four wiki sets) and eval/out_of_scope_named.jsonl (out of scope, held
out the same way), it keeps the best candidate's cosine (default hybrid
search, as ``podcite eval`` and the query path read it: the same whatever k)
and ``index.search.unknown_terms`` (and ``index.coverage.names_met``, read
at ``ABSTAIN_NAMED_BELOW``).  Then: what each rule abstains on, set by
set and pooled; the rule chosen on all the questions (the most out-of-scope
questions abstained on with at most 5% of the in-scope ones, pooled); and a
two-fold cross-validation of that choice (five random halvings: choose on one
half, score the other).

    .venv/bin/python bench/abstention.py --index /tmp/lib/index
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.evaluate import evaluate
from index.questions import Question, audit_scope, read_questions
from index.records import ABSTAIN_BELOW, ABSTAIN_UNKNOWN_BELOW
from index.search import abstains_at, named_threshold

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "eval"
T1 = np.round(np.arange(0.46, 0.56, 0.01), 2)
T2 = np.round(np.arange(0.50, 0.76, 0.01), 2)
Row = tuple[float, bool, bool, bool]  # best cosine, unknown word, in scope, names met
# Written after the thresholds were chosen: reported, never pooled or chosen on
# (in scope, but for the named questions: eval/proper_name_prereg.json).
HELD_OUT = (
    "fresh moments",
    "fresh wiki",
    "fresh wiki 2",
    "fresh wiki 3",
    "fresh wiki 4",
    "named (out of scope)",
    "fresh moments 2 (quantities)",
)


def question_sets() -> dict[str, list[Question]]:
    e = ROOT / "eval"
    shared = read_questions(SHARED / "relevant_qs.jsonl") + read_questions(
        SHARED / "irrelevant_qs.jsonl"
    )
    ours = [
        q for n in ("out_of_scope", "wiki_questions", "moment_questions")
        for q in read_questions(e / f"{n}.jsonl")
    ]  # fmt: skip
    return {
        "shared (audited)": audit_scope(shared, e / "scope_audit.jsonl"),
        "ours": ours,
        "lookalikes": read_questions(e / "out_of_scope_lookalikes.jsonl"),
        HELD_OUT[0]: read_questions(e / "moment_questions_fresh.jsonl"),
        HELD_OUT[1]: read_questions(e / "wiki_questions_fresh.jsonl"),
        HELD_OUT[2]: read_questions(e / "wiki_questions_fresh2.jsonl"),
        HELD_OUT[3]: read_questions(e / "wiki_questions_fresh3.jsonl"),
        HELD_OUT[4]: read_questions(e / "wiki_questions_fresh4.jsonl"),
        HELD_OUT[5]: read_questions(e / "out_of_scope_named.jsonl"),
        HELD_OUT[6]: read_questions(e / "moment_questions_fresh2.jsonl"),
    }


def rates(rows: Sequence[Row], t1: float, t2: float) -> tuple[float, float]:
    """(share of out-of-scope abstained on, share of in-scope abstained on)."""
    ab = [abstains_at(s, u, named_threshold(t1, n, u), t2) for s, u, _, n in rows]
    out = [a for a, (_, _, y, _) in zip(ab, rows, strict=True) if not y]
    ins = [a for a, (_, _, y, _) in zip(ab, rows, strict=True) if y]
    return (
        float(np.mean(out)) if out else float("nan"),
        float(np.mean(ins)) if ins else float("nan"),
    )


def choose(rows: Sequence[Row], cosine_only: bool = False) -> tuple[float, float]:
    """(t1, t2) abstaining on the most out-of-scope questions at <= 5% of in-scope ones."""
    best = (-1.0, ABSTAIN_BELOW, ABSTAIN_UNKNOWN_BELOW)
    for t1 in T1:
        for t2 in [t1] if cosine_only else [t for t in T2 if t >= t1]:
            recall, false = rates(rows, float(t1), float(t2))
            if false <= 0.05 and recall > best[0]:
                best = (recall, float(t1), float(t2))
    return best[1], best[2]


def main() -> None:
    from server.runtime import open_for_queries
    from server.settings import Settings

    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--model", type=Path, help="a model bench/tune.py built the index with")
    args = ap.parse_args()
    if args.model:  # bench/tune.py records its models as "bench:<path>"
        from index import SentenceTransformerEmbedder, open_index

        emb = SentenceTransformerEmbedder(args.model, name=f"bench:{args.model}")
        index = open_index(args.index, emb, verify=False)
    else:
        index = open_for_queries(Settings(index_dir=args.index))
    sets: dict[str, list[Row]] = {}
    for name, qs in question_sets().items():
        report = evaluate(index, qs, mode="hybrid", only_indexed=False)
        sets[name] = [
            (o.top_score or 0.0, o.unknown, o.in_scope, o.named) for o in report.outcomes
        ]  # fmt: skip
    pooled = [r for name, rows in sets.items() if name not in HELD_OUT for r in rows]

    def line(label: str, t1: float, t2: float) -> None:
        cells = []
        for name, rows in [*sets.items(), ("pooled", pooled)]:
            recall, false = rates(rows, t1, t2)
            cells.append(
                f"{name}: {recall:.3f} / {false:.3f}" if false == false else f"{name}: {recall:.3f}"
            )
        print(f"{label:38s} " + " | ".join(cells))

    print("rule: out-of-scope abstained / in-scope abstained")
    for t in (0.50, 0.51, 0.52, 0.53):
        line(f"cosine < {t}", t, t)
    line(
        f"default: < {ABSTAIN_BELOW}, or < {ABSTAIN_UNKNOWN_BELOW} unknown",
        ABSTAIN_BELOW,
        ABSTAIN_UNKNOWN_BELOW,
    )
    t1, t2 = choose(pooled)
    line(f"chosen on all: < {t1}, or < {t2} unknown", t1, t2)
    print("\ntwo-fold cross-validation (choose on one half, score the other):")
    for seed in range(5):
        order = list(range(len(pooled)))
        random.Random(seed).shuffle(order)
        half = len(order) // 2
        a, b = [pooled[i] for i in order[:half]], [pooled[i] for i in order[half:]]
        for train, test, name in ((a, b, "A->B"), (b, a, "B->A")):
            r1, r2 = choose(train)
            c1, _ = choose(train, cosine_only=True)
            rule, cos = rates(test, r1, r2), rates(test, c1, c1)
            print(
                f"  {seed} {name}: rule (<{r1}, <{r2} unknown) {rule[0]:.3f} / {rule[1]:.3f};"
                f" cosine alone (<{c1}) {cos[0]:.3f} / {cos[1]:.3f}"
            )


if __name__ == "__main__":
    main()
