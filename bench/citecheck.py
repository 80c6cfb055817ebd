"""Calibrate and score the citation check against hand-checked citations.

Needs an index built from the shared wiki pages and transcripts together
(docs/benchmarks.md).  Thresholds are chosen on eval/citation_labels.jsonl
(80, "tuning") only; eval/citation_labels_heldout.jsonl (80) is scored with
the chosen parameters and never tuned on, and eval/citation_labels_fresh.jsonl
(80, drawn and labelled after the rules were chosen) likewise.  A "confirmed" verdict is right
when the claim is said within 75 s of the cited time (the labels' own line is
60 s; three labels are 71-77 s away and marked borderline); a "corrected"
one when its ``said_at`` is within 30 s of where the labels say it is said.

    .venv/bin/python bench/citecheck.py --index /tmp/lib/index            # the defaults
    .venv/bin/python bench/citecheck.py --index /tmp/lib/index --grid     # the sweep (tuning half)
    .venv/bin/python bench/citecheck.py --index /tmp/lib/index --align    # whole-page alignment

``--align`` measures the whole-page monotone alignment: each page's cited
sentences, in page order, are placed on the transcript by dynamic
programming (Viterbi) over match scores, a prior for the cited time, a cost
for going back in time and a score for leaving a sentence unplaced; the
verdicts then read the placed positions.  It is compared with the
per-sentence check on the tuning half.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from index import citecheck, store

ROOT = Path(__file__).resolve().parent.parent
HALVES = ("citation_labels.jsonl", "citation_labels_heldout.jsonl")
# A third set, drawn and labelled after every rule here was chosen (eval/README.md):
# scored with the defaults, never tuned on.
FRESH = "citation_labels_fresh.jsonl"
# The issue's two seed citations (the shared wiki twin of corpus/'s seed): the
# Vesuna et al. rhythm at 1:23:04 is said there (must not stay unverified); the
# 5-HT2A claim cited 1:26:21 is said at 1:35:11 (must never be confirmed).
SEED = "experimental_treatments_for_depression.md"
SEED_SAID = {4984.0: ("confirmed", "corrected"), 5181.0: ("corrected", "unverified")}


@dataclass
class Case:
    label: dict[str, Any]
    page: str
    index: int  # position among the page's cited sentences
    cited: float
    text: str
    vector: NDArray[np.float32]
    tl: citecheck.Timeline


def load(path: Path) -> tuple[store.Stored, list[NDArray[np.float32]]]:
    idx = store.load(path, verify=False, searchable=False)
    starts = idx.sentence_start
    vecs = [
        idx.sentence_vectors[int(a) : int(a) + len(p.sentences)].astype(np.float32)
        for a, p in zip(starts, idx.passages, strict=True)
    ]
    return idx, vecs


def pages(
    idx: store.Stored, vecs: list[NDArray[np.float32]], tls: dict[str, Any]
) -> dict[str, list[tuple[int, float, str, NDArray[np.float32]]]]:
    """Per wiki page with a checkable episode: its cited sentences in page order
    (char offset, cited time, text, vector)."""
    out: dict[str, list[tuple[int, float, str, NDArray[np.float32]]]] = {}
    for p, v in zip(idx.passages, vecs, strict=True):
        if p.kind != "wiki" or p.episode is None or p.episode.id not in tls:
            continue
        for s, sv in zip(p.sentences, v, strict=True):
            if s.time is not None and s.time.exact:
                out.setdefault(p.path, []).append((s.start, s.time.seconds, s.text, sv))
    for rows in out.values():
        rows.sort(key=lambda r: r[0])
    return out


def cases(
    name: str, by_page: dict[str, Any], episode_of: dict[str, str], tls: dict[str, Any]
) -> list[Case]:
    out = []
    for line in (ROOT / "eval" / name).open(encoding="utf-8"):
        lab = json.loads(line)
        suffix = lab["source"].removeprefix("shared:")
        page = next(k for k in by_page if k.endswith(suffix))
        rows = by_page[page]
        # A label on a line that only cites ("." after a link, "Reference: …")
        # is, since parser 5, the citation of the sentence before it, whose
        # span reaches over it: that sentence, the last to start before it.
        i = next((i for i, r in enumerate(rows) if r[0] == lab["char"]), None)
        if i is None:
            i = max(i for i, r in enumerate(rows) if r[0] < lab["char"])
        _, cited, text, v = by_page[page][i]
        out.append(Case(lab, page, i, cited, text, v, tls[episode_of[page]]))
    return out


def seed_cases(
    by_page: dict[str, Any], episode_of: dict[str, str], tls: dict[str, Any]
) -> list[Case]:
    page = next(k for k in by_page if k.endswith(SEED))
    return [
        Case({}, page, i, cited, text, v, tls[episode_of[page]])
        for i, (_, cited, text, v) in enumerate(by_page[page])
        if cited in SEED_SAID
    ]


def right(c: Case, check: citecheck.Check) -> bool | None:
    """Whether a verdict is right by the labels (None: unverified)."""
    said = c.label["said_at"]
    if check.verdict == "confirmed":
        return said is not None and abs(said - c.cited) <= 75
    if check.verdict == "corrected":
        return said is not None and check.said_at is not None and abs(check.said_at - said) <= 30
    return None


def score(checks: list[tuple[Case, citecheck.Check]]) -> dict[str, Any]:
    n: Counter[str] = Counter()
    ok: Counter[str] = Counter()
    for c, k in checks:
        n[k.verdict] += 1
        ok[k.verdict] += bool(right(c, k))
    return {
        "confirmed": n["confirmed"],
        "confirmed precision": round(ok["confirmed"] / max(n["confirmed"], 1), 3),
        "corrected": n["corrected"],
        "corrected precision": round(ok["corrected"] / max(n["corrected"], 1), 3),
        "unverified": n["unverified"],
        "pairs": dict(
            sorted(Counter(f"{c.label['verdict']}->{k.verdict}" for c, k in checks).items())
        ),
    }


def local(cs: list[Case], p: citecheck.Params) -> list[tuple[Case, citecheck.Check]]:
    return [(c, citecheck.check(c.tl, c.cited, c.text, c.vector, p)) for c in cs]


def viterbi(
    times: NDArray[np.float64],
    s: NDArray[np.float32],
    cited: NDArray[np.float64],
    prior: float,
    back_cost: float,
    skip: float,
    horizon: float = 600.0,
    slack: float = 30.0,
) -> list[int | None]:
    """Each row's transcript position on the best path (None: left unplaced).
    A path goes forward in time (``slack`` seconds back allowed), or back at
    ``back_cost``; a placement scores its match less ``prior`` × its distance
    from its citation (capped at ``horizon``); an unplaced row scores ``skip``."""
    n, m = s.shape
    e = s - prior * np.minimum(np.abs(times[None, :] - cited[:, None]), horizon) / horizon
    limit = np.searchsorted(times, times + slack, side="right") - 1
    idx = np.arange(m)
    start, best = 0.0, np.full(m, -np.inf)
    ptr = np.zeros((n, m), dtype=np.int64)
    unplaced = np.zeros((n, m), dtype=bool)
    for i in range(n):
        prefix = np.maximum.accumulate(best)
        arg = np.maximum.accumulate(np.where(np.r_[True, best[1:] > prefix[:-1]], idx, 0))
        g = int(np.argmax(best))
        cand = np.stack([prefix[limit], np.full(m, best[g] - back_cost), np.full(m, start)])
        which = np.argmax(cand, axis=0)
        src = np.where(which == 0, arg[limit], np.where(which == 1, g, -1))
        placed = e[i] + cand[which, idx]
        stay = best + skip
        unplaced[i] = stay >= placed
        best = np.where(unplaced[i], stay, placed)
        ptr[i] = np.where(unplaced[i], idx, src)
        start += skip
    out: list[int | None] = [None] * n
    j = int(np.argmax(best))
    if best[j] <= start:
        return out
    for i in range(n - 1, -1, -1):
        out[i] = None if unplaced[i, j] else j
        j = int(ptr[i, j])
        if j < 0:
            break
    return out


def aligned(
    cs: list[Case],
    by_page: dict[str, Any],
    p: citecheck.Params,
    prior: float,
    back_cost: float,
    skip: float,
) -> list[tuple[Case, citecheck.Check]]:
    """Verdicts read off the whole-page alignment."""
    out = []
    for page in sorted({c.page for c in cs}):
        rows = by_page[page]
        tl = next(c.tl for c in cs if c.page == page)
        s = np.stack([citecheck.match_scores(tl, text, v, p) for _, _, text, v in rows])
        cited = np.array([r[1] for r in rows])
        path = viterbi(tl.times, s, cited, prior, back_cost, skip)
        for c in (c for c in cs if c.page == page):
            j = path[c.index]
            local_check = citecheck.decide(tl.times, s[c.index], c.cited, p)
            if j is None:
                out.append((c, replace(local_check, verdict="unverified", said_at=None)))
                continue
            at, sc = float(tl.times[j]), float(s[c.index, j])
            if abs(at - c.cited) <= p.near and sc >= p.confirm:
                out.append((c, replace(local_check, verdict="confirmed", said_at=at)))
            elif (
                abs(at - c.cited) > p.near
                and sc >= p.correct
                and sc - local_check.near_score >= p.margin
            ):
                out.append((c, replace(local_check, verdict="corrected", said_at=at)))
            else:
                out.append((c, replace(local_check, verdict="unverified", said_at=None)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--grid", action="store_true", help="sweep thresholds on the tuning half")
    ap.add_argument("--align", action="store_true", help="measure the whole-page alignment")
    args = ap.parse_args()
    idx, vecs = load(args.index)
    t0 = time.perf_counter()
    tls = citecheck.timelines(idx.passages, vecs)
    by_page = pages(idx, vecs, tls)
    episode_of = {p.path: p.episode.id for p in idx.passages if p.kind == "wiki" and p.episode}
    tune, held = (cases(n, by_page, episode_of, tls) for n in HALVES)
    print(f"{len(tune)} + {len(held)} labelled citations found in the index")
    seed = seed_cases(by_page, episode_of, tls)
    base = citecheck.Params()
    if args.grid:
        rows = []
        for w, win in itertools.product((0.0, 0.5, 1.0), (1, 3, 5)):
            shape = citecheck.Params(overlap_weight=w, window=win)
            scored = [
                (c, citecheck.match_scores(c.tl, c.text, c.vector, shape)) for c in tune + seed
            ]
            for near, c_, cm, ca, x, m, u in itertools.product(
                (45.0, 60.0, 90.0),
                (0.6, 0.7, 0.8),
                (0.0, 0.05, 0.1),
                (0.9, 1.0, 9.0),
                (0.9, 1.0, 1.1),
                (0.1, 0.2, 0.3),
                (0.0, 0.1),
            ):
                p = replace(
                    shape,
                    near=near,
                    confirm=c_,
                    confirm_margin=cm,
                    confirm_alone=ca,
                    correct=x,
                    margin=m,
                    unique=u,
                )
                checks = [(c, citecheck.decide(c.tl.times, s, c.cited, p)) for c, s in scored]
                if all(k.verdict in SEED_SAID[c.cited] for c, k in checks[len(tune) :]):
                    rows.append((score(checks[: len(tune)]), p))
        # The goals: confirmed precision >= 0.95, corrected >= 0.90; then as few
        # unverified as possible.
        ok = [
            (r, p)
            for r, p in rows
            if r["confirmed precision"] >= 0.95
            and (r["corrected"] == 0 or r["corrected precision"] >= 0.9)
        ]
        ok.sort(key=lambda rp: (rp[0]["unverified"], -rp[0]["corrected"]))
        print(
            f"{len(rows)} settings pass the seed's two citations; "
            f"{len(ok)} meet the precision goals on the tuning half"
        )
        for r, p in ok[:8]:
            print(f"  {r}\n     {p}")
        return
    if args.align:
        print("per sentence (tuning):", score(local(tune, base)))
        for prior, back_cost, skip in itertools.product(
            (0.0, 0.1, 0.3), (0.0, 0.1, 0.3, 1.0), (0.6, 0.8)
        ):
            r = score(aligned(tune, by_page, base, prior, back_cost, skip))
            r.pop("pairs")
            print(f"aligned prior={prior} back={back_cost} skip={skip} (tuning): {r}")
        return
    print(f"parameters: {base}")
    fresh = cases(FRESH, by_page, episode_of, tls)
    for name, cs in zip((*HALVES, FRESH), (tune, held, fresh), strict=True):
        print(f"{name}: {score(local(cs, base))}")
    for c, k in local(seed, base):
        print(
            f"seed twin, cited {c.cited:.0f} s: {k.verdict} (said_at {k.said_at}) | {c.text[:60]}"
        )
    t1 = time.perf_counter()
    _, counts = citecheck.verify(idx.passages, vecs, base)
    t2 = time.perf_counter()
    total = sum(counts.values())
    print(
        f"every checkable citation in the index: {dict(counts)} of {total} "
        f"(unverified {counts['unverified'] / max(total, 1):.1%}); verify took {t2 - t1:.1f} s "
        f"(timelines {t1 - t0:.1f} s before it, labels included)"
    )


if __name__ == "__main__":
    main()
