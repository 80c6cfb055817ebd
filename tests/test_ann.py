"""Index by size (index/ann.py) and the format-3 store (index/store/, index/rows.py).

Behaviour, not timings (bench/ann.py measures those): the HNSW path agrees
with the exact one, ``auto`` picks by size, filters under HNSW return only
admitted rows, a memory-mapped load answers as an in-memory one, rows written
in batches read back on demand, a format-2 index is read and rebuilt without
embedding anything, and the two levels of verification catch what they say.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from index import ann, store
from index.backend import Index
from index.embedded import EmbeddedBackend
from index.errors import IndexFormatError
from index.open import open_index
from index.records import Filters
from index.rows import CACHE, PassageTable, columns_of
from index.search import search
from index.serial import passage_to_dict
from ingest.records import Episode, Passage, Sentence, Time

RNG = np.random.default_rng(11)
QUESTIONS = [
    "ketamine dissociation",
    "morning light and the circadian clock",
    "does exercise improve mood",
    "psilocybin and serotonin receptors",
]


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _clustered(n: int, dim: int = 32) -> np.ndarray:
    centres = RNG.normal(size=(40, dim))
    return _unit(centres[RNG.integers(40, size=n)] + 0.4 * RNG.normal(size=(n, dim)))


# -- choosing and searching -----------------------------------------------------


def test_auto_picks_by_size() -> None:
    assert ann.choose(ann.HNSW_FROM - 1, "auto") == "flat"
    assert ann.choose(ann.HNSW_FROM, "auto") == "hnsw"
    assert ann.choose(10**7, "flat") == "flat" and ann.choose(5, "hnsw") == "hnsw"


def test_hnsw_agrees_with_exact_on_hand_made_vectors() -> None:
    vectors = _clustered(3000)
    flat, hnsw = ann.Dense(vectors), ann.Dense(vectors, ann.build(vectors))
    assert (flat.kind, hnsw.kind) == ("flat", "hnsw")
    queries = _clustered(30)
    brute = [list(np.argsort(-(vectors @ q))[:10]) for q in queries]
    for q, truth in zip(queries, brute, strict=True):
        assert [r for r, _ in flat.search(q, 10)] == truth
        got = [r for r, _ in hnsw.search(q, 10)]
        assert got[0] == truth[0] and ann.recall_at(got, truth) >= 0.9


def test_filters_under_hnsw_admit_only_admitted_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ann, "EXACT_ROWS", 10)  # every filter below goes through the graph
    vectors = _clustered(3000)
    hnsw = ann.Dense(vectors, ann.build(vectors))
    masks = {
        "half": RNG.random(3000) < 0.5,
        "tenth": RNG.random(3000) < 0.1,
        "one": np.arange(3000) == 1234,
    }
    for q in _clustered(20):
        scores = vectors @ q
        for mask in masks.values():
            got = hnsw.search(q, 10, ann.Admitted.of_mask(mask))
            assert got and all(mask[r] for r, _ in got)
            admitted = np.flatnonzero(mask)
            best = admitted[np.argmax(scores[admitted])]
            assert got[0][0] == best
            assert got[0][1] == pytest.approx(float(scores[best]), abs=1e-5)
    empty = ann.Admitted.of_mask(np.zeros(3000, dtype=bool))
    assert hnsw.search(_clustered(1)[0], 10, empty) == []


def test_hnsw_path_returns_the_flat_paths_top_result(seed_index_dir: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    flat = open_index(seed_index_dir, embedder, ann_mode="flat")
    hnsw = open_index(seed_index_dir, embedder, ann_mode="hnsw")  # the graph built at start-up
    assert flat.backend.dense_kind == "flat" and hnsw.backend.dense_kind == "hnsw"  # type: ignore[attr-defined]
    for q in QUESTIONS:
        v = flat.embed(q)
        (row, score), (want_row, want_score) = (
            hnsw.backend.dense(v, 1, Filters())[0],
            flat.backend.dense(v, 1, Filters())[0],
        )
        assert row == want_row and score == pytest.approx(want_score, abs=1e-5)
        assert search(hnsw, q, 1)[0].row == search(flat, q, 1)[0].row


def test_filters_under_hnsw_agree_with_exact(
    ui_index_dir: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(ann, "EXACT_ROWS", 0)
    flat = open_index(ui_index_dir, embedder, ann_mode="flat")
    hnsw = open_index(ui_index_dir, embedder, ann_mode="hnsw")
    episodes = sorted({p.episode.id for p in flat.backend.passages() if p.episode})  # type: ignore[attr-defined]
    filters = [Filters(kind="transcript"), Filters(kind="wiki"), Filters(after="2021-06-01")]
    filters += [Filters(before="2021-06-01"), Filters(after="2030-01-01")]
    filters += [Filters(episode=e) for e in episodes]
    filters += [Filters(episode=episodes[0], kind="transcript")]
    for f in filters:
        for q in QUESTIONS:
            v = flat.embed(q)
            got = hnsw.backend.dense(v, 5, f)
            want = flat.backend.dense(v, 5, f)
            assert all(f.admits(hnsw.backend.passage(r)) for r, _ in got)
            if not want:  # nothing admitted
                assert not got and not search(hnsw, q, 3, filters=f)
                continue
            assert got[0][0] == want[0][0]
            top = search(hnsw, q, 3, filters=f)
            assert top and all(f.admits(h.passage) for h in top)
            assert top[0].row == search(flat, q, 3, filters=f)[0].row


# -- the store -------------------------------------------------------------------


def test_memory_mapped_load_gives_identical_results(seed_index_dir: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    stored = store.load(seed_index_dir)
    assert isinstance(stored.passages, PassageTable)
    assert not stored.vectors.flags.owndata and not stored.vectors.flags.writeable
    in_memory = replace(
        stored,
        passages=list(stored.passages),
        vectors=np.array(stored.vectors),
        sentence_vectors=np.array(stored.sentence_vectors),
    )
    mapped = open_index(seed_index_dir, embedder)
    held = Index(EmbeddedBackend(in_memory), stored.manifest, embedder)
    for q in QUESTIONS:
        a, b = search(mapped, q, 5), search(held, q, 5)
        assert [(h.row, h.best_sentence) for h in a] == [(h.row, h.best_sentence) for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b])
        assert a[0].passage == b[0].passage


def _passages(n: int) -> list[Passage]:
    """Hand-made passages over a few documents, kinds, episodes and dates (some none)."""
    out = []
    for i in range(n):
        doc, kind = f"doc{i // 40}", ("wiki", "transcript")[(i // 40) % 2]
        ep = (
            None if i // 40 % 5 == 4 else Episode(f"E{i // 80}", "t", f"202{i % 4}-0{1 + i % 9}-01")
        )
        if ep is not None and i % 13 == 0:
            ep = replace(ep, date=None)
        k = 1 + i % 3
        sentences = tuple(
            Sentence(10 * (i % 40) + j, 10 * (i % 40) + j + 1, f"w{i} s{j}", Time(i + j, True))
            for j in range(k)
        )
        out.append(Passage(f"p{i}", doc, doc, kind, None, ep, ("h",), sentences, None))  # type: ignore[arg-type]
    return out


def test_a_store_written_in_batches_round_trips_rows_on_demand(tmp_path: Path) -> None:
    passages = _passages(1500)
    dim = 8
    vectors = _unit(RNG.normal(size=(1500, dim)))
    counts = [len(p.sentences) for p in passages]
    sentences = _unit(RNG.normal(size=(sum(counts), dim))).astype(np.float16)
    keys = [f"{i:040x}" for i in range(1500)]
    docs = {d: sum(p.document_id == d for p in passages) for d in {p.document_id for p in passages}}
    manifest = {
        "model": {"name": "toy"},
        "dimension": dim,
        "counts": {"documents": len(docs), "passages": 1500, "sentences": len(sentences)},
        "documents": {d: {"passages": c} for d, c in docs.items()},
    }
    out = tmp_path / "idx"
    at = 0
    with store.writing(out, manifest, (1500, len(sentences))) as w:
        for a in range(0, 1500, 400):  # batches, as bench/scale_corpus.py writes 10^6
            s = sum(counts[a : a + 400])
            w.add(
                passages[a : a + 400],
                vectors[a : a + 400],
                sentences[at : at + s],
                keys[a : a + 400],
            )
            at += s
    assert w.published == out.resolve()
    loaded = store.load(out)
    table = loaded.passages
    assert isinstance(table, PassageTable) and len(table) == 1500
    for i in (0, 1, 777, 1499, -1):
        assert passage_to_dict(table[i]) == passage_to_dict(passages[i])
    assert [p.id for p in table[10:13]] == ["p10", "p11", "p12"]
    assert [p.id for p in table] == [p.id for p in passages]
    assert len(table._cache) <= CACHE  # the LRU holds a few, never all
    np.testing.assert_array_equal(loaded.vectors, vectors)
    np.testing.assert_array_equal(
        loaded.sentence_vectors_of(5), sentences[sum(counts[:5]) : sum(counts[:6])]
    )
    assert list(loaded.keys) == keys
    # Columns: the same facts as the passages, and filters exactly as Filters.admits.
    for f in [
        Filters(kind="wiki"),
        Filters(episode="E3"),
        Filters(episode="E3", kind="transcript"),
        Filters(after="2022-01-01"),
        Filters(before="2021-05-01"),
        Filters(after="2021-02-01", before="2022-06-01", kind="wiki"),
        Filters(episode="nope"),
        Filters(kind="nope"),
    ]:
        want = np.array([f.admits(p) for p in passages])
        np.testing.assert_array_equal(loaded.columns.admitted(f), want)
        if f.episode:
            np.testing.assert_array_equal(loaded.columns.episode_rows(f), np.flatnonzero(want))
    assert loaded.columns.document_rows("doc3") == list(range(120, 160))
    assert columns_of(passages).document_counts() == loaded.columns.document_counts()
    manifest_on_disk = json.loads((out / store.MANIFEST).read_text())
    assert manifest_on_disk["format_version"] == 3 and manifest_on_disk["ann"] == {"kind": "flat"}


def test_a_batch_that_disagrees_leaves_nothing(tmp_path: Path) -> None:
    passages = _passages(10)
    manifest = {"model": {"name": "toy"}, "dimension": 4, "counts": {}, "documents": {}}
    out = tmp_path / "idx"
    with pytest.raises(ValueError, match="disagree"), store.writing(out, manifest, (10, 20)) as w:
        w.add(passages, _unit(RNG.normal(size=(9, 4))), np.zeros((20, 4), np.float16), ["k"] * 10)
    assert not out.exists()
    assert not [p for p in store.builds_dir(out).iterdir() if p.is_dir()]


def test_an_hnsw_build_is_written_and_used(seed_index_dir: Path, tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    data = store.load(seed_index_dir, searchable=False)
    out = tmp_path / "hnsw"
    store.publish(out, data, ann_mode="hnsw")
    assert (out / store.ANN).is_file()
    assert json.loads((out / store.MANIFEST).read_text())["ann"]["kind"] == "hnsw"
    auto = open_index(out, embedder)
    assert auto.backend.dense_kind == "hnsw"  # type: ignore[attr-defined]
    assert open_index(out, embedder, ann_mode="flat").backend.dense_kind == "flat"  # type: ignore[attr-defined]
    assert (
        search(auto, "ketamine dissociation", 1)[0].row
        == search(open_index(seed_index_dir, embedder), "ketamine dissociation", 1)[0].row
    )


# -- verification and older formats -------------------------------------------------


def test_quick_verification_checks_sizes_and_small_files_full_checks_every_byte(
    seed_index_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(seed_index_dir.resolve(), copy)
    monkeypatch.setattr(store.read, "FULL_CHECK_BYTES", 0)  # as if the index were large
    monkeypatch.setattr(store.read, "SMALL_FILE", 5000)
    vectors = copy / store.VECTORS
    assert vectors.stat().st_size > store.read.SMALL_FILE >= (copy / "rows.json").stat().st_size
    with vectors.open("r+b") as fh:  # same size, one vector changed
        fh.seek(-8, 2)
        fh.write(b"\x01" * 8)
    store.load(copy)  # sizes match and the small files hash right: accepted
    with pytest.raises(IndexFormatError, match="does not match the manifest checksum"):
        store.load(copy, verify="full")
    with vectors.open("ab") as fh:  # a size the manifest does not record
        fh.write(b"\x00")
    with pytest.raises(IndexFormatError, match="not the size"):
        store.load(copy)
    shutil.rmtree(copy)
    shutil.copytree(seed_index_dir.resolve(), copy)
    with (copy / "rows.json").open("r+b") as fh:  # a small file: always hashed
        fh.write(b" ")
    with pytest.raises(IndexFormatError, match=r"rows\.json"):
        store.load(copy)


def _as_format_2(src: Path, dst: Path) -> None:
    """Write ``src``'s index as podcite wrote format 2: no offsets, rows or
    sizes, an IndexFlatIP in faiss.index (what an older build left)."""
    import faiss

    shutil.copytree(src.resolve(), dst)
    gone = ("passages.offsets.npy", "rows.npy", "rows.json", "published", "tokens.txt")
    for name in (*gone, store.SIGN_BITS, store.SIGN_STARTS):
        (dst / name).unlink(missing_ok=True)
    m = json.loads((dst / store.MANIFEST).read_text())
    flat = faiss.IndexFlatIP(int(m["dimension"]))
    flat.add(np.load(dst / store.VECTORS))
    faiss.write_index(flat, str(dst / store.LEGACY_FAISS))
    names = [*store.LEGACY_FILES, *(f"bm25/{f.name}" for f in (dst / "bm25").iterdir())]
    m = {k: v for k, v in m.items() if k not in ("sizes", "ann", store.SELF)}
    m["format_version"] = 2
    m["checksums"] = {n: store.file_sha256(dst / n) for n in names}
    m[store.SELF] = store.manifest_digest(m)
    (dst / store.MANIFEST).write_text(json.dumps(m))


def test_a_format_2_index_is_read_and_rebuilt_with_token_vectors(
    seed_index_dir: Path, corpus_copy: Path, tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    from index import build
    from ingest import load

    old = tmp_path / "idx"
    _as_format_2(seed_index_dir, old)
    legacy = open_index(old, embedder)  # read whole, as before
    now = open_index(seed_index_dir, embedder)
    for q in QUESTIONS:
        assert search(legacy, q, 3)[0].row == search(now, q, 3)[0].row
    # Its vectors could be reused, but a build stores every row's token vectors
    # (index/tokens.py), which only the model gives: embedded again, once.
    report = build(load([corpus_copy]).documents, old, embedder)
    assert report.embedded == len(now) and report.reused == 0
    assert store.read_manifest(old)["format_version"] == store.FORMAT_VERSION
    assert store.load(old).token_bits is not None
    assert (
        search(open_index(old, embedder), QUESTIONS[0], 1)[0].row
        == search(now, QUESTIONS[0], 1)[0].row
    )


def test_keyword_scores_equal_bm25s_own(seed_index: Index) -> None:
    kw = seed_index.backend._keyword  # type: ignore[attr-defined]
    for q in [*QUESTIONS, "5-HT2A 10 mg", "zebra"]:
        ids = kw.query_ids(q)
        want = kw.bm25.get_scores_from_ids(ids) if ids else np.zeros(kw.size, np.float32)
        np.testing.assert_allclose(kw.scores(q), want, rtol=1e-6)
        assert kw.max_score(q) == pytest.approx(
            sum(float(kw.bm25.get_scores_from_ids([t]).max()) for t in ids)
        )
