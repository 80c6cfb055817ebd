"""Regression gate: our own question set, on a fixed subset of the shared
library, must not lose more than 3 points of hit@1 against eval/gate.json.

The subset (built here into a temporary folder) is the seed, every wiki page
a question names, the channel page (the catalog) and the transcripts of the
first GATE_EPISODES episodes of the moment questions.  Questions whose gold is
not in the subset are skipped by the evaluation.  The default re-reads the
first 5 candidates token by token (index/rerank.py); the first stage alone is
gated beside it, so neither stage can lose ground behind the other's gains.
Refresh the recorded figures with
`python -m tests.test_quality_gate` after a change that moves them on purpose.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from index import build, open_index
from index.evaluate import evaluate
from index.questions import read_questions
from index.records import RerankSettings
from ingest import load
from tests.conftest import CORPUS, ROOT, SHARED

GATE = ROOT / "eval" / "gate.json"
GATE_EPISODES = 6
QUESTION_FILES = ["wiki_questions.jsonl", "moment_questions.jsonl", "out_of_scope.jsonl"]


def subset(shared: Path) -> list[Path]:
    pages = set()
    for line in (ROOT / "eval" / "wiki_questions.jsonl").open(encoding="utf-8"):
        for e in json.loads(line)["evidence"]:
            if e["source"].startswith("shared:"):
                pages.add(shared / e["source"].removeprefix("shared:"))
    moments = [json.loads(x) for x in (ROOT / "eval" / "moment_questions.jsonl").open()]
    episodes = sorted({m["video_id"] for m in moments})[:GATE_EPISODES]
    with (shared / "catalog" / "transcripts.csv").open(encoding="utf-8") as fh:
        files = {r["youtube_id"]: r["file"] for r in csv.DictReader(fh)}
    return [
        CORPUS,
        *sorted(pages),
        shared / "wiki" / "hubermanlab" / "hubermanlab.md",
        *(shared / "transcripts" / files[e] for e in episodes),
        shared / "catalog" / "transcripts.csv",
    ]


def measure(shared: Path, out: Path, embedder: Any) -> dict[str, float]:
    loaded = load(subset(shared))
    build(loaded.documents, out, embedder, catalog_files=loaded.catalog_files)
    index = open_index(out, embedder)
    questions = [q for f in QUESTION_FILES for q in read_questions(ROOT / "eval" / f)]
    report = evaluate(index, questions, mode="hybrid", source="gate")
    first = evaluate(index, questions, mode="hybrid", source="gate", rerank=RerankSettings(0))
    return {
        "hit@1": round(report.metrics["hit@1"], 3),
        "mrr@10": round(report.metrics["mrr@10"], 3),
        "questions": report.questions,
        "first stage hit@1": round(first.metrics["hit@1"], 3),
        "first stage mrr@10": round(first.metrics["mrr@10"], 3),
    }


@pytest.mark.slow
def test_hit_at_1_does_not_regress(shared: Path, tmp_path: Path, embedder: Any) -> None:
    recorded = json.loads(GATE.read_text(encoding="utf-8"))
    got = measure(shared, tmp_path / "index", embedder)
    assert got["questions"] == recorded["questions"], got
    assert got["hit@1"] >= recorded["hit@1"] - recorded["tolerance"], (got, recorded)
    floor = recorded["first stage hit@1"] - recorded["tolerance"]
    assert got["first stage hit@1"] >= floor, (got, recorded)


if __name__ == "__main__":  # refresh eval/gate.json
    import tempfile

    from index import SentenceTransformerEmbedder

    with tempfile.TemporaryDirectory() as tmp:
        figures = measure(SHARED, Path(tmp) / "index", SentenceTransformerEmbedder())
    GATE.write_text(json.dumps({**figures, "tolerance": 0.03}, indent=1) + "\n", encoding="utf-8")
    print(figures)
