"""The hand-checked citation labels (eval/citation_labels*.jsonl): consistent,
disjoint halves, each pointing at a cited wiki sentence and an exact cue start.

They are the ground truth for the citation check (docs/benchmarks.md,
"Citation check"): 80 to tune on (the first 60 and 20 more), 80 held out, and
80 fresh ones drawn and labelled after every rule was chosen."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

CUE = re.compile(r"^(?:(\d+):)?(\d\d):(\d\d)\.(\d{3}) -->", re.M)


def _cue_starts(path: Path) -> set[float]:
    text = path.read_text(encoding="utf-8")
    return {
        round(int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000, 2)
        for h, m, s, ms in CUE.findall(text)
    }


LABEL_FIELDS = {"source", "char", "video_id", "cited", "said_at", "verdict", "note"}


FILES = ("citation_labels.jsonl", "citation_labels_heldout.jsonl", "citation_labels_fresh.jsonl")


@pytest.mark.parametrize("name", FILES)
def test_labels_are_consistent(name: str) -> None:
    labels = [json.loads(x) for x in (ROOT / "eval" / name).open(encoding="utf-8")]
    assert len(labels) >= 75
    for lab in labels:
        assert set(lab) == LABEL_FIELDS, lab
        assert lab["source"].startswith("shared:wiki/") and len(lab["note"]) < 200
        said = lab["said_at"]
        if said is None:
            assert lab["verdict"] == "unverified"
        else:
            assert lab["verdict"] == (
                "confirmed" if abs(said - lab["cited"]) <= 60 else "corrected"
            )


def test_label_sets_do_not_overlap() -> None:
    sets = [
        {(x["source"], x["char"]) for x in map(json.loads, (ROOT / "eval" / n).open())}
        for n in FILES
    ]
    assert all(a.isdisjoint(b) for i, a in enumerate(sets) for b in sets[i + 1 :])
    assert sum(map(len, sets)) >= 230


def test_labels_point_at_cited_sentences(shared: Path) -> None:
    from ingest import load

    labels = [json.loads(x) for n in FILES for x in (ROOT / "eval" / n).open(encoding="utf-8")]
    files = sorted({shared / lab["source"].removeprefix("shared:") for lab in labels})
    catalog = shared / "catalog" / "transcripts.csv"
    docs = {d.path: d for d in load(files).documents}
    vtt = {row[1]: row[0] for row in csv.reader(catalog.open(encoding="utf-8"))}
    cues: dict[str, set[float]] = {}
    for lab in labels:
        doc = docs[str(shared / lab["source"].removeprefix("shared:"))]
        # A label on a line that only cites (a stray "." after a link) points
        # inside the sentence before it, whose span reaches over it (parser 5).
        (s,) = [s for s in doc.sentences if s.start == lab["char"]] or [
            s for s in doc.sentences if s.start < lab["char"] < s.end
        ]
        assert s.time is not None and s.time.exact and s.time.seconds == lab["cited"]
        assert doc.episode is not None and doc.episode.id == lab["video_id"]
        if lab["said_at"] is not None:
            video = lab["video_id"]
            if video not in cues:
                cues[video] = _cue_starts(shared / "transcripts" / vtt[video])
            assert round(lab["said_at"], 2) in cues[video], lab
