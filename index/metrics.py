"""Pure measures over outcomes already judged: ranking metrics (by ranx),
the abstention calibration, and the paired sign test that docs/benchmarks.md
reports beside every before/after.  No index, no model: numbers in, numbers
out (tests/test_evaluate.py, tests/test_tune.py)."""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence

import numpy as np

from index.records import ABSTAIN_BELOW, ABSTAIN_UNKNOWN_BELOW
from index.search import abstains_at, named_threshold
from ingest.errors import PodciteError


def retrieval_metrics(relevance: dict[str, Sequence[bool]], k: int = 10) -> dict[str, float]:
    """hit@1, hit@5, MRR@k and nDCG@k by ranx, from each question's result list
    (True where a result hits the question's single gold)."""
    if not relevance:
        return {}
    try:
        from ranx import Qrels, Run
        from ranx import evaluate as ranx_evaluate
    except ImportError as exc:  # an optional extra: only evaluation needs it
        raise PodciteError(
            "evaluation needs ranx: install it with `pip install 'podcite[eval]'`"
        ) from exc

    names = {
        "hit@1": "hit_rate@1",
        "hit@5": "hit_rate@5",
        f"mrr@{k}": f"mrr@{k}",
        f"ndcg@{k}": f"ndcg@{k}",
    }
    run: dict[str, dict[str, float]] = {}
    for qid, flags in relevance.items():
        first = next((i for i, f in enumerate(flags) if f), None)
        run[qid] = {
            ("gold" if i == first else f"r{i}"): float(len(flags) - i) for i in range(len(flags))
        }
    if not any(run.values()):
        return {name: 0.0 for name in names}
    qrels = Qrels({qid: {"gold": 1} for qid in relevance})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's type-safety chatter
        scores = ranx_evaluate(qrels, Run(run), list(names.values()), make_comparable=True)
    return {name: round(float(scores[m]), 4) for name, m in names.items()}


def calibrate(
    top: Sequence[float],
    in_scope: Sequence[bool],
    default: float = ABSTAIN_BELOW,
    unknown: Sequence[bool] | None = None,
    unknown_below: float = ABSTAIN_UNKNOWN_BELOW,
    named: Sequence[bool] | None = None,
) -> dict[str, float]:
    """The top-score threshold that best separates in-scope from out-of-scope
    questions (answer when score >= threshold), its accuracy, and the ROC AUC
    (the cosine alone); and what the default rule does (``search.abstains``:
    the cosine threshold, and ``unknown_below`` where the question names
    something the library never says, ``unknown``, and ``ABSTAIN_NAMED_BELOW``
    where its first result holds the people or products it names, ``named``):
    the share of out-of-scope
    questions it abstains on (recall), of in-scope ones, and of its
    abstentions that were right (precision)."""
    unk = list(unknown) if unknown is not None else [False] * len(top)
    nam = list(named) if named is not None else [False] * len(top)
    pos = [s for s, y in zip(top, in_scope, strict=True) if y]
    neg = [s for s, y in zip(top, in_scope, strict=True) if not y]
    out: dict[str, float] = {"in_scope_mean": mean(pos), "out_of_scope_mean": mean(neg)}
    abstained = [
        abstains_at(s, u, named_threshold(default, n, u), unknown_below)
        for s, u, n in zip(top, unk, nam, strict=True)
    ]
    caught = sum(a and not y for a, y in zip(abstained, in_scope, strict=True))
    wrong = sum(a and y for a, y in zip(abstained, in_scope, strict=True))
    if not pos or not neg:  # one class (a file of lookalikes): what the default does
        out = {k: v for k, v in out.items() if not np.isnan(v)}
        out["default"] = default
        if neg:
            out["default recall"] = round(caught / len(neg), 4)
        if pos:
            out["default in-scope abstained"] = round(wrong / len(pos), 4)
        return out
    best = (-1.0, 0.0)
    for t in sorted(set(top)):
        acc = (sum(s >= t for s in pos) + sum(s < t for s in neg)) / len(top)
        best = max(best, (acc, t))
    pairs = [(p > n) + 0.5 * (p == n) for p in pos for n in neg]
    out |= {
        "threshold": round(best[1], 4),
        "accuracy": round(best[0], 4),
        "auc": round(sum(pairs) / len(pairs), 4),
        "default": default,
        "default recall": round(caught / len(neg), 4),
        "default in-scope abstained": round(wrong / len(pos), 4),
        "default precision": round(caught / (caught + wrong), 4) if caught + wrong else 1.0,
    }
    return out


def mean(xs: Sequence[float]) -> float:
    return round(statistics.fmean(xs), 4) if xs else float("nan")


def sign_test(gained: int, lost: int) -> float:
    """Two-sided exact sign test (McNemar's exact test) on paired outcomes:
    ``gained`` questions right only after, ``lost`` right only before."""
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(gained, lost) + 1)) / 2**n
    return float(min(1.0, 2 * tail))
