"""Adapting the model (issue 15), measured honestly: tune on one half of the
library's episodes, score the other half's questions as well as all of them.

Steps (each a subcommand; long ones under ``nice -n 19``, one at a time):

    # pairs from the whole-library index, the tuned half's episodes only
    bench/tune.py pairs --index /tmp/lib/index --negatives mixed
    # train a configuration (checkpoints in /tmp/tune/ckpt/NAME)
    bench/tune.py train --name c1 --steps 300 --lr 2e-5
    # a transcripts-only index of the 92 transcripts with a model ("base": the
    # packaged model, its vectors reused from --index, nothing embedded)
    bench/tune.py build --model base --out /tmp/tune/t-base --index /tmp/lib/index
    bench/tune.py build --model /tmp/tune/models/c1 --out /tmp/tune/t-c1
    # every question set, per question, into a JSON file; then before/after
    bench/tune.py eval --index /tmp/tune/t-base --out /tmp/tune/e-base.json
    bench/tune.py compare /tmp/tune/e-base.json /tmp/tune/e-c1.json

Question sets: syn_test's rows of transcribed episodes (chapter), our moment
and wiki questions, the Tool chapter starts of eval/tool_chapters.csv (query:
the chapter's title without its "Tool:" prefix; a hit is a result of the
episode whose cited moment is from 30 s before the chapter starts to 120 s
after), and abstention (the shared relevant/irrelevant sets with the hand
audit, and ours): the AUC of the top cosine.  Paired significance: an exact
sign test on per-question hit@1 (McNemar's exact test).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
WORK = Path("/tmp/tune")
MODES = ("hybrid", "dense")


def _episodes(index: Path) -> set[str]:
    from index import store

    m = store.read_manifest(index)
    return {str(d["episode"]) for d in m["documents"].values() if d.get("episode")}


def cmd_pairs(args: argparse.Namespace) -> None:
    from index import SentenceTransformerEmbedder, store
    from index.tune import counts, mine, split_episodes

    stored = store.load(args.index, verify=False, searchable=False)
    tuned, held = split_episodes(_episodes(args.index))
    emb = SentenceTransformerEmbedder()
    t0 = time.perf_counter()
    pairs = mine(stored, tuned, emb.encode, negatives=args.negatives, min_score=args.min_score)
    out = WORK / f"pairs-{args.negatives}.jsonl"
    with out.open("w", encoding="utf-8") as fh:
        for p in pairs:
            fh.write(json.dumps(_pair(p)) + "\n")
    print(f"{len(tuned)} episodes tuned on, {len(held)} held out")
    print(f"{len(pairs)} pairs in {time.perf_counter() - t0:.0f} s: {counts(pairs)} -> {out}")


def _pair(p: Any) -> dict[str, Any]:
    return {f: getattr(p, f) for f in p.__slots__}


def _read_pairs(path: Path) -> list[Any]:
    from index.tune import Pair

    with path.open(encoding="utf-8") as fh:
        return [Pair(**json.loads(line)) for line in fh if line.strip()]


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from index.embedder import default_model_dir
    from index.training import TrainSettings, summary, train

    torch.set_num_threads(args.threads)
    pairs = _read_pairs(WORK / f"pairs-{args.negatives}.jsonl")
    kinds = set(args.kinds.split(","))
    pairs = [p for p in pairs if p.kind in kinds]
    settings = TrainSettings(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        loss=args.loss,
        max_seq_length=args.max_len,
        freeze_embeddings=not args.all_params,
        interpolate=args.interpolate,
        minutes=args.minutes,
        checkpoint_every=50,
    )
    ckpt = WORK / "ckpt" / args.name
    ckpt.mkdir(parents=True, exist_ok=True)
    out = WORK / "models" / args.name
    t0 = time.perf_counter()

    def progress(step: int, steps: int, loss: float) -> None:
        if step % 10 == 0 or step == steps:
            el = time.perf_counter() - t0
            print(f"step {step}/{steps} loss {loss:.3f} {el:.0f} s", flush=True)

    result = train(default_model_dir(), pairs, out, settings, progress, ckpt)
    # The arguments first: what was mined and run replaces what was asked.
    meta = {**vars(args), "pairs": len(pairs), "kinds": sorted(kinds)}
    meta |= summary(result) | {"losses": result.losses}
    (out / "bench_train.json").write_text(json.dumps(meta, indent=1, default=str))
    print(json.dumps({k: v for k, v in meta.items() if k != "losses"}, default=str))


def _transcripts(only: set[str] | None = None) -> list[Path]:
    with (SHARED / "catalog" / "transcripts.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [
        SHARED / "transcripts" / r["file"] for r in rows if only is None or r["youtube_id"] in only
    ]


def cmd_build(args: argparse.Namespace) -> None:
    import torch

    from index import SentenceTransformerEmbedder, build, store
    from index.vectors import compute, previous
    from ingest import load

    torch.set_num_threads(args.threads)
    from index.tune import split_episodes

    only = None
    if args.half != "all":
        tuned, held = split_episodes(_episodes(args.index))
        only = (held if args.half == "held" else tuned) & transcribed()
        if args.max_episodes:  # the episodes with the most questions (a cheaper index)
            only = set(sorted(only, key=lambda e: (-_questions_of(e), e))[: args.max_episodes])
    paths = [*_transcripts(only), SHARED / "catalog" / "transcripts.csv"]
    if args.wiki:
        paths += [SHARED / "wiki", SHARED / "catalog" / "episodes.csv"]
    loaded = load(paths)
    if args.model == "base":
        emb = SentenceTransformerEmbedder()
        lib = store.load(args.index, verify=False, searchable=False)
        reuse = previous(lib, emb.name)

        def vectors(ps: Any, docs: Any, keys: Any, e: Any, _prev: Any, prog: Any) -> Any:
            return compute(ps, docs, keys, e, reuse, prog)

        hooks: dict[str, Any] = {"compute_vectors": vectors}
    else:
        emb = SentenceTransformerEmbedder(Path(args.model), name=f"bench:{args.model}")
        hooks = {}
    t0 = time.perf_counter()
    report = build(
        loaded.documents, args.out, emb, catalog_files=loaded.catalog_files, replace=True, **hooks
    )
    print(
        f"{args.out}: {report.passages} passages, {report.embedded} embedded, "
        f"{report.reused} reused, {time.perf_counter() - t0:.0f} s"
    )


def transcribed() -> set[str]:
    with (SHARED / "catalog" / "transcripts.csv").open(encoding="utf-8") as fh:
        return {r["youtube_id"] for r in csv.DictReader(fh)}


def _questions_of(episode: str) -> int:
    from index.questions import read_questions

    sets = [SHARED / "eval" / "syn_test.jsonl", ROOT / "eval" / "moment_questions.jsonl"]
    return sum(q.video_id == episode for f in sets for q in read_questions(f))


def tool_questions(episodes: set[str]) -> list[Any]:
    from index.questions import Question

    out = []
    with (SHARED / "eval" / "tool_chapters.csv").open(encoding="utf-8") as fh:
        for n, r in enumerate(csv.DictReader(fh)):
            if r["youtube_id"] not in episodes:
                continue
            title = re.sub(r"^\s*Tools?\s*:\s*", "", r["chapter_title"])
            start = float(r["start_seconds"])
            out.append(
                Question(f"tool:{n}", title, "moment", r["youtube_id"], start - 30, start + 120)
            )
    return out


def question_sets(index_episodes: set[str]) -> dict[str, list[Any]]:
    from index.questions import audit_scope, read_questions

    syn = read_questions(SHARED / "eval" / "syn_test.jsonl")
    scope = [
        *read_questions(SHARED / "eval" / "relevant_qs.jsonl"),
        *read_questions(SHARED / "eval" / "irrelevant_qs.jsonl"),
    ]
    return {
        "syn_test": syn,
        "moments": read_questions(ROOT / "eval" / "moment_questions.jsonl"),
        "wiki": read_questions(ROOT / "eval" / "wiki_questions.jsonl"),
        "tools": tool_questions(index_episodes & transcribed()),
        "scope_shared": audit_scope(scope, ROOT / "eval" / "scope_audit.jsonl"),
        "scope_ours": [
            *read_questions(ROOT / "eval" / "wiki_questions.jsonl"),
            *read_questions(ROOT / "eval" / "moment_questions.jsonl"),
            *read_questions(ROOT / "eval" / "out_of_scope.jsonl"),
        ],
    }


def cmd_eval(args: argparse.Namespace) -> None:
    import faiss

    from index import SentenceTransformerEmbedder, open_index
    from index.evaluate import evaluate

    faiss.omp_set_num_threads(1)
    emb = (
        SentenceTransformerEmbedder()
        if args.model == "base"
        else SentenceTransformerEmbedder(Path(args.model), name=f"bench:{args.model}")
    )
    index = open_index(args.index, emb, verify=False)
    sets = question_sets(_episodes(args.index))
    out: dict[str, Any] = {"index": str(args.index), "model": args.model, "sets": {}}
    for kind in [None, "transcript"] if args.kinds else [None]:
        for name, qs in sets.items():
            if args.sets and name not in args.sets.split(","):
                continue
            scope = name.startswith("scope")
            for mode in ["hybrid"] if scope else list(MODES):
                r = evaluate(
                    index,
                    qs,
                    mode=mode,
                    source=name,
                    kind=kind,
                    only_indexed=not scope,
                    dense_weight=args.dense_weight,
                )
                key = f"{name}|{mode}|{kind or 'all'}"
                out["sets"][key] = {
                    "metrics": r.metrics,
                    "abstention": r.abstention,
                    "latency": r.latency,
                    "outcomes": {
                        o.id: [o.hits[:1] == [True], any(o.hits[:5]), o.video_id, o.top_score]
                        for o in r.outcomes
                    },
                }
                print(key, r.questions, r.metrics or r.abstention.get("auc"), flush=True)
    args.out.write_text(json.dumps(out))


def _hit1(d: dict[str, Any], held: set[str] | None) -> dict[str, bool]:
    return {q: v[0] for q, v in d["outcomes"].items() if held is None or v[2] in held}


def _hit5(d: dict[str, Any], held: set[str] | None) -> dict[str, bool]:
    return {q: v[1] for q, v in d["outcomes"].items() if held is None or v[2] in held}


def cmd_soup(args: argparse.Namespace) -> None:
    """Interpolate a tuned model's weights with the packaged model's (WiSE-FT,
    Wortsman et al. 2022): ``alpha`` of the tuned, the rest of the base.  Keeps
    what tuning gains in its domain and loses less elsewhere, at no training."""
    from safetensors.torch import load_file, save_file

    from index.embedder import default_model_dir
    from index.training import interpolated

    base = load_file(str(default_model_dir() / "model.safetensors"))
    tuned = load_file(str(args.model / "model.safetensors"))
    # The base file also holds ``embeddings.position_ids`` (a buffer, not a weight).
    assert set(tuned) <= set(base), "a tuned model has the base's parameters"
    mixed = {k: interpolated(tuned[k], base[k], args.alpha).contiguous() for k in tuned}
    shutil.copytree(args.model, args.out, dirs_exist_ok=True)
    save_file(mixed, str(args.out / "model.safetensors"), metadata={"format": "pt"})
    print(f"{args.out}: {args.alpha} x {args.model.name} + {1 - args.alpha:g} x base")


def cmd_compare(args: argparse.Namespace) -> None:
    from index.metrics import calibrate, sign_test
    from index.tune import split_episodes

    a, b = (json.loads(Path(p).read_text()) for p in (args.before, args.after))
    _tuned, held = split_episodes(_episodes(Path(args.split_index)))
    print(f"before: {a['model']} ({a['index']}); after: {b['model']} ({b['index']})")
    print("| set | mode | sources | questions | hit@1 before → after | hit@5 | gained / lost | p |")
    print("|---|---|---|---|---|---|---|---|")
    for key, da in a["sets"].items():
        db = b["sets"].get(key)
        if db is None:
            continue
        name, mode, kind = key.split("|")
        if name.startswith("scope"):
            sa = [v[3] for v in da["outcomes"].values()]
            sb = [v[3] for v in db["outcomes"].values()]
            labels = _scope_labels(name)
            ca, cb = calibrate(sa, labels), calibrate(sb, labels)
            print(
                f"| {name} | {mode} | {kind} | {len(sa)} | AUC {ca['auc']:.3f} → {cb['auc']:.3f} "
                f"| at 0.51: {ca['default recall']:.3f}/{ca['default in-scope abstained']:.3f} → "
                f"{cb['default recall']:.3f}/{cb['default in-scope abstained']:.3f} | | |"
            )
            continue
        for part, only in (("all", None), ("held-out half", held)):
            h1a, h1b = _hit1(da, only), _hit1(db, only)
            qs = sorted(set(h1a) & set(h1b))
            if not qs:
                continue
            h5a, h5b = _hit5(da, only), _hit5(db, only)
            gained = sum(h1b[q] and not h1a[q] for q in qs)
            lost = sum(h1a[q] and not h1b[q] for q in qs)
            print(
                f"| {name} ({part}) | {mode} | {kind} | {len(qs)} "
                f"| {_rate(h1a, qs):.3f} → {_rate(h1b, qs):.3f} "
                f"| {_rate(h5a, qs):.3f} → {_rate(h5b, qs):.3f} "
                f"| {gained} / {lost} | {sign_test(gained, lost):.3f} |"
            )
    for key in ("syn_test|hybrid|all", "moments|hybrid|all"):
        for d, label in ((a, "before"), (b, "after")):
            lat = d["sets"].get(key, {}).get("latency", {})
            if lat:
                print(
                    f"{key} {label}: embed p50 {lat.get('embed p50 ms')} ms, search p50 "
                    f"{lat.get('search p50 ms')} ms"
                )


_SCOPE_CACHE: dict[str, list[bool]] = {}


def _scope_labels(name: str) -> list[bool]:
    if name not in _SCOPE_CACHE:
        sets = question_sets(set())
        _SCOPE_CACHE[name] = [q.in_scope for q in sets[name]]
    return _SCOPE_CACHE[name]


def _rate(flags: dict[str, bool], qs: list[str]) -> float:
    return statistics.fmean(flags[q] for q in qs)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pairs")
    p.add_argument("--index", type=Path, default=Path("/tmp/lib/index"))
    p.add_argument("--negatives", default="mixed")
    p.add_argument("--min-score", type=float, default=0.65)
    t = sub.add_parser("train")
    t.add_argument("--name", required=True)
    t.add_argument("--negatives", default="mixed")
    t.add_argument("--kinds", default="citation,heading,cloze")
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-5)
    t.add_argument("--loss", default="mnrl")
    t.add_argument("--max-len", type=int, default=160)
    t.add_argument("--all-params", action="store_true")
    t.add_argument("--minutes", type=float, default=None)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--interpolate", type=float, default=1.0, help="share of the trained weights")
    b = sub.add_parser("build")
    b.add_argument("--model", required=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--index", type=Path, default=Path("/tmp/lib/index"))
    b.add_argument("--wiki", action="store_true", help="the whole library, not transcripts only")
    b.add_argument("--half", default="all", choices=["all", "held", "tuned"])
    b.add_argument("--max-episodes", type=int, default=0)
    b.add_argument("--threads", type=int, default=2)
    e = sub.add_parser("eval")
    e.add_argument("--index", type=Path, required=True)
    e.add_argument("--model", default="base")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--kinds", action="store_true", help="also transcripts only (kind filter)")
    e.add_argument("--sets", default="", help="only these sets, comma-separated")
    e.add_argument("--dense-weight", type=float, default=None, help="hybrid's share of the cosine")
    m = sub.add_parser("soup")
    m.add_argument("--model", type=Path, required=True)
    m.add_argument("--alpha", type=float, default=0.5)
    m.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("compare")
    c.add_argument("before")
    c.add_argument("after")
    c.add_argument("--split-index", default="/tmp/lib/index")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    cmds = {"pairs": cmd_pairs, "train": cmd_train, "build": cmd_build, "eval": cmd_eval}
    {**cmds, "soup": cmd_soup}.get(args.cmd, cmd_compare)(args)


if __name__ == "__main__":
    main()
