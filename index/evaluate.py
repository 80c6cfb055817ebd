"""Retrieval evaluation: question files -> search -> hit@1, hit@5, MRR@10, nDCG@10.

Each question has one gold answer (a moment or a passage) however many results
land on it, so a run is judged as ranx sees a single relevant document per
question: the first result that hits the gold is that document ("gold"), later
hits on it are duplicates and count for nothing.  The metrics are ranx's own.
What counts as a hit, by question file, is in ``index.questions``.

Questions whose gold is not in the index (an episode without wiki pages, a file
not ingested) cannot be hit by any ranker: they are counted and left out.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from index.backend import Index
from index.coverage import names_met, unknown_terms
from index.metrics import calibrate, retrieval_metrics
from index.query import check_question
from index.questions import (
    Question,
    QuestionKind,
    audit_scope,
    gold_in_index,
    judge,
    judge_answer,
    read_questions,
)
from index.records import (
    ABSTAIN_BELOW,
    FUSIONS,
    MODES,
    Filters,
    FusionSettings,
    Hit,
    Mode,
    RerankSettings,
)
from index.search import AnswerRule, answer_for, find, named_threshold, search
from ingest.errors import PodciteError

# Evaluation modes: the search modes, and hybrid with each fusion by name.
EVAL_MODES: tuple[str, ...] = (*MODES, *(f"hybrid-{f}" for f in FUSIONS))
ALL_MODES: tuple[str, ...] = ("dense", "bm25", *(f"hybrid-{f}" for f in FUSIONS))


@dataclass
class Outcome:
    id: str
    kind: QuestionKind
    video_id: str | None
    hits: list[bool]  # per result
    episode_hits: list[bool]
    top_score: float | None  # the best candidate's cosine (what abstaining reads)
    offset_s: float | None  # first right-episode result's cited time to the gold window
    search_ms: float
    embed_ms: float
    in_scope: bool
    # The first answer sentence is the evidence sentence (None: no answer given,
    # or no evidence sentence to judge by).
    answer_hit: bool | None = None
    unknown: bool = False  # the question names something no passage contains
    named: bool = False  # its first result holds the people or products it names


@dataclass
class Report:
    mode: str
    source: str
    k: int
    questions: int = 0
    skipped: int = 0  # gold not in the index
    metrics: dict[str, float] = field(default_factory=dict)
    episode: dict[str, float] = field(default_factory=dict)
    timestamp: dict[str, float] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    abstention: dict[str, float] = field(default_factory=dict)
    answer: dict[str, float] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)

    def table(self) -> str:
        return table([self])

    def to_dict(self, per_question: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not per_question:
            d.pop("outcomes")
        return d


def table(reports: Sequence[Report]) -> str:
    """Reports side by side, one column per mode, as plain text."""
    rows: list[tuple[str, list[str]]] = [
        ("questions", [f"{r.questions} (+{r.skipped} skipped)" for r in reports])
    ]
    for group in ("metrics", "episode", "timestamp", "answer", "abstention", "latency"):
        names = list(dict.fromkeys(n for r in reports for n in getattr(r, group)))
        for n in names:
            label = f"episode {n}" if group == "episode" else n
            rows.append((label, [_fmt(getattr(r, group).get(n)) for r in reports]))
    head = ["", *[r.mode for r in reports]]
    width = [
        max(len(x) for x in col) for col in zip(head, *[[a, *b] for a, b in rows], strict=True)
    ]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, width, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip([a, *b], width, strict=True)) for a, b in rows]
    return f"{reports[0].source if reports else ''}\n" + "\n".join(line.rstrip() for line in lines)


def _fmt(v: float | None) -> str:
    return "-" if v is None or np.isnan(v) else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"


def _offset(q: Question, hits: Sequence[Hit], episode_hits: Sequence[bool]) -> float | None:
    if q.start is None or q.end is None:
        return None
    for h, ok in zip(hits, episode_hits, strict=True):
        if ok and h.time is not None:
            t = h.time.seconds
            return 0.0 if q.start <= t <= q.end else min(abs(t - q.start), abs(t - q.end))
    return None


def eval_mode(mode: str) -> tuple[Mode, FusionSettings]:
    """An evaluation mode -> the search mode and fusion it runs with."""
    if mode not in EVAL_MODES:
        raise PodciteError(f"unknown mode {mode!r}: one of {', '.join(EVAL_MODES)}")
    if mode.startswith("hybrid-"):
        method = next(f for f in FUSIONS if mode == f"hybrid-{f}")
        return "hybrid", FusionSettings(method=method)
    return cast(Mode, mode), FusionSettings()


def _indexed(index: Index, kind: str | None) -> tuple[set[str], list[str]]:
    """Episode ids and document paths of the index (of one kind of source)."""
    docs = [d for d in index.documents.values() if kind is None or d.get("kind") == kind]
    if all("episode" in d for d in docs):
        return {d["episode"] for d in docs if d["episode"]}, [str(d["path"]) for d in docs]
    # An index built before the manifest listed episodes: read its passages.
    f = Filters(kind=kind)
    rows = (index.backend.passage(r) for r in range(index.backend.count()))
    searched = [p for p in rows if f.admits(p)]
    episodes = {p.episode.id for p in searched if p.episode}
    return episodes, list(dict.fromkeys(p.path for p in searched))


def evaluate(
    index: Index,
    questions: Sequence[Question],
    k: int = 10,
    mode: str = "dense",
    source: str = "",
    only_indexed: bool = True,
    limit: int | None = None,
    kind: str | None = None,
    dense_weight: float | None = None,
    rerank: RerankSettings = RerankSettings(),
) -> Report:
    """Search every question (the first ``limit`` whose gold is in the index) and
    score the results.  Latency is search() alone; the query embedding, the same
    for every mode, is timed apart (embed_ms).  ``kind`` searches one kind of
    source only (the API's kind= filter); ``dense_weight`` overrides the
    weighted fusion's share of the cosine (bench/tune.py sweeps it for a tuned
    model, whose cosines are spread differently); ``rerank`` turns on the
    token-by-token second stage (index/rerank.py), named in the report's mode."""
    label = f"{mode}+rerank{rerank.top}" if rerank.top else mode
    if rerank.top and rerank.around != RerankSettings().around:  # say what the default is not
        label += f"-around{rerank.around}"
    report = Report(mode=label, source=source + (f" ({kind} only)" if kind else ""), k=k)
    filters = Filters(kind=kind)
    if only_indexed:
        episodes, paths = _indexed(index, kind)
        kept = [q for q in questions if gold_in_index(q, episodes, paths)]
        report.skipped = len(questions) - len(kept)
        questions = kept
    questions = questions[:limit] if limit is not None else questions
    search_mode, fusion = eval_mode(mode)
    if dense_weight is not None:
        fusion = replace(fusion, dense_weight=dense_weight)
    if index.embedder is None:
        raise PodciteError("evaluation needs an index opened with its embedder")
    embedder = index.embedder
    if questions:  # first-call costs (faiss threads, BM25 arrays) stay out of the timings
        search(index, "warm up", k, filters=filters, mode=search_mode, fusion=fusion, rerank=rerank)
    for q in questions:
        try:
            text = check_question(q.text)
        except ValueError:  # an empty or overlong question: not searchable
            report.skipped += 1
            continue
        # Embedded afresh for every mode, bypassing the index's question cache
        # (which evaluating must not change): each search then runs right after
        # a real embedding, as a user's does.
        # One forward pass gives the vector and the tokens' vectors the
        # re-reading reads, as the index's question cache holds them.
        t0 = time.perf_counter()
        question = embedder.token_vectors([text])[0]
        t1 = time.perf_counter()
        found = find(
            index,
            text,
            k,
            filters=filters,
            mode=search_mode,
            fusion=fusion,
            question=question,
            rerank=rerank,
        )
        ms = ((time.perf_counter() - t1) * 1000, (t1 - t0) * 1000)
        hits = found.hits
        judged = [judge(q, h) for h in hits]
        eps = [e for _, e in judged]
        # The best cosine of every candidate, as the query path abstains on it.
        top = found.best_cosine if hits else None
        hit = [h for h, _ in judged]
        offset = _offset(q, hits, eps)
        unknown = bool(unknown_terms(index, text))
        named = names_met(text, hits)
        below = named_threshold(ABSTAIN_BELOW, named, unknown)
        report.outcomes.append(
            Outcome(
                q.id,
                q.kind,
                q.video_id,
                hit,
                eps,
                top,
                offset,
                *ms,
                q.in_scope,
                _answer_hit(index, q, hits, question.sentence, below),
                unknown,
                named,
            )
        )
    _summarise(report)
    return report


def _answer_hit(
    index: Index, q: Question, hits: Sequence[Hit], vector: Any, below: float = ABSTAIN_BELOW
) -> bool | None:
    """Whether the answer's first sentence is the question's evidence sentence
    (None: no answer, or nothing to judge it by).  The answer is the one
    ``index.search.answer`` gives: the same choice over the same hits, at the
    threshold the query path holds the question to (``below``)."""
    if q.kind not in ("evidence", "moment"):
        return None
    chosen = answer_for(index, q.text, hits, vector, below)
    return judge_answer(q, chosen[0]) if chosen else None


def answer_metrics(outcomes: Sequence[Outcome], pool: int = AnswerRule().pool) -> dict[str, float]:
    """How often the first answer sentence is the evidence sentence: over every
    question with one ("answer@1"), and as the answer's precision where the
    answer had the evidence to choose: the first result holds it ("answer
    precision"), or one of the ``pool`` results the answer reads ("... top 5")."""
    judged = [o for o in outcomes if o.kind in ("evidence", "moment")]
    if not judged:
        return {}
    first = [o for o in judged if o.hits[:1] == [True]]
    within = [o for o in judged if any(o.hits[:pool])]

    def share(xs: Sequence[Outcome]) -> float:
        return round(sum(bool(o.answer_hit) for o in xs) / len(xs), 4) if xs else float("nan")

    return {
        "answer@1": share(judged),
        "answer precision": share(first),
        f"answer precision top {pool}": share(within),
    }


def _summarise(report: Report) -> None:
    outs = report.outcomes
    report.questions = len(outs)
    gold = [o for o in outs if o.kind != "scope"]
    report.metrics = retrieval_metrics({o.id: o.hits for o in gold}, report.k)
    with_episode = [o for o in gold if o.video_id]
    report.episode = retrieval_metrics({o.id: o.episode_hits for o in with_episode}, report.k)
    report.answer = answer_metrics(outs)
    offsets = [o.offset_s for o in outs if o.offset_s is not None]
    if offsets:
        report.timestamp = {
            "cited in window": round(sum(x == 0 for x in offsets) / len(offsets), 4),
            "median offset s": round(statistics.median(offsets), 1),
        }
    if outs:
        ms = np.array([o.search_ms for o in outs])
        emb = np.array([o.embed_ms for o in outs])
        report.latency = {
            "search p50 ms": round(float(np.percentile(ms, 50)), 2),
            "search p95 ms": round(float(np.percentile(ms, 95)), 2),
            "embed p50 ms": round(float(np.percentile(emb, 50)), 2),
        }
    scored = [o for o in outs if o.top_score is not None]
    if scored:
        report.abstention = calibrate(
            [o.top_score or 0.0 for o in scored],
            [o.in_scope for o in scored],
            unknown=[o.unknown for o in scored],
            named=[o.named for o in scored],
        )


def run_eval(
    index: Index,
    path: Path | Sequence[Path],
    mode: str = "dense",
    limit: int | None = None,
    kind: str | None = None,
    audit: Path | None = None,
    rerank: RerankSettings = RerankSettings(),
) -> Report:
    """What ``podcite eval`` runs: the questions of one file (or several, e.g. an
    in-scope and an out-of-scope set to calibrate abstention) against ``index``."""
    paths = [path] if isinstance(path, Path) else [Path(p) for p in path]
    questions = [q for p in paths for q in read_questions(p)]
    if audit is not None:
        questions = audit_scope(questions, audit)
    source = ", ".join(p.name for p in paths) + (f", audited by {audit.name}" if audit else "")
    return evaluate(
        index, questions, mode=mode, source=source, limit=limit, kind=kind, rerank=rerank
    )
