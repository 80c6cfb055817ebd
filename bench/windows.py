"""Transcript window length and overlap, measured.

Builds a transcript-only index of a fixed set of episodes for each window
choice and scores it with the real search on (a) the shared syn_test rows of
those episodes (hit: a result of the right episode whose cited moment falls in
the gold chapter) and (b) our moment questions on those episodes (hit: a cited
moment no more than 30 s before the answer starts and not after it ends).

    .venv/bin/python bench/windows.py [--episodes 20]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from index import SentenceTransformerEmbedder, build, open_index, search
from ingest import load

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
CHOICES = [(20.0, 20.0), (30.0, 30.0), (60.0, 60.0), (60.0, 30.0)]


def seconds(value: str) -> float:
    total = 0.0
    for part in value.split(":"):
        total = total * 60 + float(part)
    return total


def metrics(firsts: list[int | None]) -> str:
    n = len(firsts)
    h1 = sum(f == 0 for f in firsts) / n
    h5 = sum(f is not None and f < 5 for f in firsts) / n
    mrr = sum(1 / (f + 1) for f in firsts if f is not None and f < 10) / n
    return f"hit@1 {h1:.2f}  hit@5 {h5:.2f}  MRR@10 {mrr:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=20)
    args = ap.parse_args()
    moments = [json.loads(x) for x in (ROOT / "eval" / "moment_questions.jsonl").open()]
    episodes = sorted({m["video_id"] for m in moments})[: args.episodes]
    files = {
        r["youtube_id"]: r["file"]
        for r in csv.DictReader((SHARED / "catalog" / "transcripts.csv").open())
    }
    syn = [json.loads(x) for x in (SHARED / "eval" / "syn_test.jsonl").open()]
    syn = [r for r in syn if r["video_id"] in episodes]
    moments = [m for m in moments if m["video_id"] in episodes]
    paths = [SHARED / "transcripts" / files[e] for e in episodes]
    loaded = load([*paths, SHARED / "catalog" / "transcripts.csv"])
    emb = SentenceTransformerEmbedder()
    print(f"{len(episodes)} episodes, {len(syn)} syn_test rows, {len(moments)} moment questions")
    for window, stride in CHOICES:
        out = Path(f"/tmp/podcite-bench-windows/{int(window)}-{int(stride)}")
        t0 = time.perf_counter()
        report = build(loaded.documents, out, emb, window_s=window, stride_s=stride)
        secs = time.perf_counter() - t0
        idx = open_index(out, emb)

        def first(question: str, video: str, lo: float, hi: float, idx=idx) -> int | None:  # type: ignore[no-untyped-def]
            """Rank of the first result of ``video`` citing a moment in [lo, hi]."""
            for i, h in enumerate(search(idx, question, 10)):
                ep, t = h.passage.episode, h.time
                if ep is not None and ep.id == video and t is not None and lo <= t.seconds <= hi:
                    return i
            return None

        syn_f = [
            first(r["question"], r["video_id"], seconds(r["time_start"]), seconds(r["time_end"]))
            for r in syn
        ]
        mom_f = [
            first(m["question"], m["video_id"], m["answer_start"] - 30, m["answer_end"])
            for m in moments
        ]
        print(
            f"window {window:4.0f}s stride {stride:4.0f}s: {report.passages:5d} windows, "
            f"build {secs:5.0f}s | syn_test {metrics(syn_f)} | moments {metrics(mom_f)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
