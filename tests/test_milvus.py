"""The Milvus backend on Milvus Lite (in-process, a file in a tmp folder): the same
answers as FAISS + bm25s, filters inside the search, upserts, deletes, the alias
switch, the server and `podcite eval` on it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from index import milvus_store as ms
from index import store
from index.backend import Index
from index.milvus import MilvusBackend, expression, open_milvus_index
from index.records import Filters, RerankSettings
from index.search import search
from tests.conftest import CORPUS, ROOT, serving

QUESTIONS = [
    "psilocybin for depression",
    "ketamine dose",
    "5-HT2A receptor",
    "what does the brain do in sleep",
    "10 mg",
]


def published(path: Path, stored: store.Stored, alias: str = "podcite") -> str:
    mc = ms.client(str(path))
    try:
        return ms.publish(mc, alias, stored)
    finally:
        ms.close(mc, str(path))


@pytest.fixture(scope="module")
def milvus_seed(
    tmp_path_factory: pytest.TempPathFactory, seed_index_dir: Path, embedder: Any
) -> Iterator[Index]:
    uri = tmp_path_factory.mktemp("milvus") / "seed.db"
    published(uri, store.load(seed_index_dir))
    index = open_milvus_index(str(uri), "podcite", embedder)
    yield index
    index.backend.close()  # type: ignore[attr-defined]


def test_same_results_as_faiss(milvus_seed: Index, seed_index: Index) -> None:
    assert len(milvus_seed) == len(seed_index)
    assert milvus_seed.manifest["counts"] == seed_index.manifest["counts"]
    episode = next(p.episode.id for p in seed_index.backend.passages() if p.episode)  # type: ignore[attr-defined]
    for q in QUESTIONS:
        for mode in ("dense", "bm25", "hybrid"):
            for f in (Filters(), Filters(kind="wiki"), Filters(episode=episode)):
                a = search(seed_index, q, 5, mode=mode, filters=f)
                b = search(milvus_seed, q, 5, mode=mode, filters=f)
                assert [h.passage.id for h in a] == [h.passage.id for h in b], (q, mode, f)
                # The re-reading reads the same stored tokens from either store.
                a = search(seed_index, q, 5, mode=mode, filters=f, rerank=RerankSettings(8))
                b = search(milvus_seed, q, 5, mode=mode, filters=f, rerank=RerankSettings(8))
                assert [h.passage.id for h in a] == [h.passage.id for h in b], (q, mode, f)
                assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
                assert [h.best_sentence for h in a] == [h.best_sentence for h in b]
    # BM25 agrees up to Milvus's constant (k1 + 1) factor; the weighted fusion's
    # ceiling divides it away.
    rows = list(range(len(seed_index)))
    fa = seed_index.backend.keyword_scores("ketamine dose 5-HT2A", rows)
    mi = milvus_seed.backend.keyword_scores("ketamine dose 5-HT2A", rows)
    ca = seed_index.backend.keyword_ceiling("ketamine dose 5-HT2A")
    cm = milvus_seed.backend.keyword_ceiling("ketamine dose 5-HT2A")
    assert np.allclose(fa / ca, mi / cm, atol=1e-3)
    assert milvus_seed.backend.passage(0) == seed_index.backend.passage(0)
    for row in rows:
        want, got = seed_index.backend.token_bits(row), milvus_seed.backend.token_bits(row)
        assert want is not None and got is not None
        assert np.array_equal(want.bits, got.bits) and np.array_equal(want.counts, got.counts)
    assert np.allclose(
        milvus_seed.backend.sentence_vectors(3), seed_index.backend.sentence_vectors(3), atol=1e-3
    )
    doc = seed_index.backend.passage(0).document_id
    assert milvus_seed.backend.document_rows(doc) == seed_index.backend.document_rows(doc)
    every = list(range(len(seed_index)))
    assert milvus_seed.backend.kinds(every) == seed_index.backend.kinds(every)
    assert seed_index.backend.kinds(every[:2]) == [
        (p.kind, p.episode.id if p.episode else None)
        for p in map(seed_index.backend.passage, every[:2])
    ]


def test_filters_run_inside_the_search(milvus_seed: Index, seed_index: Index) -> None:
    backend = milvus_seed.backend
    passages = [seed_index.backend.passage(r) for r in range(len(seed_index))]
    q = milvus_seed.embed("depression treatment")
    dated = sorted({p.episode.date for p in passages if p.episode and p.episode.date})
    filters = [Filters(kind="transcript"), Filters(kind="wiki"), Filters(episode="nope")]
    if dated:
        filters += [Filters(after=dated[0]), Filters(before=dated[0]), Filters(after="2999-01-01")]
    for f in filters:
        admitted = {i for i, p in enumerate(passages) if f.admits(p)}
        # n as large as the index: a post-filter of a top-n could not give them all.
        got = backend.dense(q, len(passages), f)
        assert {r for r, _ in got} == admitted, f
        assert {r for r, _ in backend.keyword("depression", 50, f)} <= admitted
    assert expression(Filters(episode='a" or row >= 0 or kind == "')) == (
        'episode == "a\\" or row >= 0 or kind == \\""'
    )
    assert backend.dense(q, 5, Filters(episode='a" or row >= 0 or kind == "')) == []


def test_upsert_and_delete(tmp_path: Path, seed_index_dir: Path, embedder: Any) -> None:
    stored = store.load(seed_index_dir)
    uri = tmp_path / "edit.db"
    published(uri, stored)
    index = open_milvus_index(str(uri), "podcite", embedder)
    backend = index.backend
    assert isinstance(backend, MilvusBackend)
    n = len(index)
    first = stored.passages[0]
    # Upsert by passage id: same row, new vector.
    moved = -stored.vectors[0]
    backend.add([first], moved[None, :], [stored.sentence_vectors_of(0).astype(np.float32)])
    assert len(index) == n
    assert backend.cosines(stored.vectors[0], [0])[0] == pytest.approx(-1.0, abs=1e-5)
    # A new passage gets the next row, and is found.
    text = "Zyxquartz is a made-up word for this test."
    new = replace(first, id="new-passage", sentences=(replace(first.sentences[0], text=text),))
    backend.add([new], stored.vectors[1][None, :], [stored.sentence_vectors_of(1)[:1]])
    assert len(index) == n + 1
    assert backend.keyword("zyxquartz", 5, Filters())[0][0] == n
    assert backend.passage(n).id == "new-passage"
    assert index.manifest["counts"]["passages"] == n + 1
    # Drop a document: its passages leave both rankings, the manifest and the count.
    doc = first.document_id
    dropped = backend.drop_document(doc)
    assert dropped == sum(1 for p in stored.passages if p.document_id == doc) + 1
    assert len(index) == n + 1 - dropped
    assert backend.keyword("zyxquartz", 5, Filters()) == []
    left = backend.dense(moved, 50, Filters())
    assert all(backend.passage(r).document_id != doc for r, _ in left)
    assert doc not in index.documents
    assert backend.drop_document(doc) == 0
    backend.close()
    # What was changed is what a fresh open sees (the manifest went with the collection).
    again = open_milvus_index(str(uri), "podcite", embedder)
    assert len(again) == n + 1 - dropped and doc not in again.documents
    again.backend.close()  # type: ignore[attr-defined]


def test_alias_switch(tmp_path: Path, seed_index_dir: Path, embedder: Any) -> None:
    stored = store.load(seed_index_dir)
    uri = str(tmp_path / "alias.db")
    mc = ms.client(uri)
    first = ms.publish(mc, "lib", stored)
    old = Index(MilvusBackend(mc, first, ms.read_manifest(mc, first)), {}, embedder)
    half = len(stored.passages) // 2
    smaller = store.Stored(
        {**stored.manifest, "counts": {**stored.manifest["counts"], "passages": half}},
        stored.passages[:half],
        stored.vectors[:half],
        stored.sentence_vectors[: int(stored.sentence_start[half])],
        stored.keys[:half],
    )
    second = ms.publish(mc, "lib", smaller)
    assert ms.resolve(mc, "lib") == second != first
    assert ms.count(mc, ms.resolve(mc, "lib")) == half
    assert len(old) == len(stored.passages)  # an open index keeps its collection
    assert search(old, "ketamine", 3)
    # A build that fails halfway (here: its last passage has no vector) never
    # moves the alias and leaves nothing behind.
    broken = replace(smaller, passages=[*smaller.passages, stored.passages[-1]])
    with pytest.raises(IndexError):
        ms.publish(mc, "lib", broken)
    assert ms.resolve(mc, "lib") == second
    assert ms.builds(mc, "lib") == [first, second]
    # The live build and the one before it are kept; older ones are dropped.
    third = ms.publish(mc, "lib", stored)
    assert ms.builds(mc, "lib") == [second, third]
    assert ms.read_manifest(mc, third)["counts"]["passages"] == len(stored.passages)
    ms.close(mc, uri)


def test_tokens_survive_milvus_tokenizer() -> None:
    assert ms.milvus_token("5-ht2a") == "5_ht2a"
    assert ms.milvus_token("0.5mg") == "0__5mg"
    assert ms.milvus_token("café").startswith("_")
    assert ms.milvus_tokens("5-HT2A 5HT2A, 5 HT2A") == ms.milvus_tokens("5-HT2A")[:1] + [
        t for t in ms.milvus_tokens("5-HT2A 5HT2A, 5 HT2A")[1:]
    ]
    assert len(set(ms.milvus_tokens("1.5 mg 1-5 mg"))) == len(ms.milvus_tokens("1.5 mg 1-5 mg"))


@pytest.mark.slow
def test_server_on_milvus(tmp_path: Path, seed_index_dir: Path, seed_index: Index) -> None:
    """`podcite serve` with PODCITE_BACKEND=milvus answers as it does on FAISS."""
    import httpx

    uri = tmp_path / "serve.db"
    published(uri, store.load(seed_index_dir))  # closed: Milvus Lite is one process per file
    env = {
        "PODCITE_BACKEND": "milvus",
        # compared with the seed index asked in-process by torch: the same questions' vectors
        "PODCITE_EMBED_BACKEND": "torch",
        "PODCITE_MILVUS_URI": str(uri),
        "PODCITE_INDEX_DIR": str(tmp_path / "no-index-here"),
        "PODCITE_CORPUS_DIR": str(CORPUS),
    }
    with serving(env, timeout=180) as base:
        for q in QUESTIONS[:3]:
            got = httpx.get(f"{base}/api/search", params={"q": q, "k": 5}, timeout=30).json()
            want = search(seed_index, q, 5)
            assert [r["text"] for r in got["results"]] == [h.passage.text for h in want], q
        ask = httpx.get(f"{base}/api/ask", params={"q": QUESTIONS[0]}, timeout=30).json()
        assert ask["answer"]
        page = httpx.get(f"{base}/", params={"q": QUESTIONS[0]}, timeout=30)
        assert page.status_code == 200


def small_library(shared: Path) -> list[Path]:
    """The seed, the wiki pages of the first few wiki questions, the channel page,
    one transcript and its catalog: a small real corpus of every kind."""
    import csv
    import json

    pages: list[Path] = []
    for line in (ROOT / "eval" / "wiki_questions.jsonl").open(encoding="utf-8"):
        for e in json.loads(line)["evidence"]:
            page = shared / e["source"].removeprefix("shared:")
            if e["source"].startswith("shared:") and page not in pages:
                pages.append(page)
        if len(pages) >= 4:
            break
    moments = [json.loads(x) for x in (ROOT / "eval" / "moment_questions.jsonl").open()]
    with (shared / "catalog" / "transcripts.csv").open(encoding="utf-8") as fh:
        files = {r["youtube_id"]: r["file"] for r in csv.DictReader(fh)}
    episode = sorted({m["video_id"] for m in moments})[0]
    return [
        CORPUS,
        *pages,
        shared / "wiki" / "hubermanlab" / "hubermanlab.md",
        shared / "transcripts" / files[episode],
        shared / "catalog" / "transcripts.csv",
    ]


@pytest.mark.slow
@pytest.mark.shared
def test_eval_same_hit_at_1(tmp_path: Path, shared: Path, embedder: Any) -> None:
    """`podcite eval` (the real command, its settings from the environment) gives
    the same hit@1 within one question on faiss and on milvus."""
    import json

    from typer.testing import CliRunner

    from index import build
    from ingest import load
    from server.cli import app

    loaded = load(small_library(shared))
    out = tmp_path / "index"
    build(loaded.documents, out, embedder, catalog_files=loaded.catalog_files)
    uri = tmp_path / "lib.db"
    published(uri, store.load(out))
    files = [str(ROOT / "eval" / f) for f in ("wiki_questions.jsonl", "moment_questions.jsonl")]
    runs = {}
    for backend in ("faiss", "milvus"):
        env = {"PODCITE_BACKEND": backend, "PODCITE_MILVUS_URI": str(uri)}
        res = CliRunner().invoke(
            app, ["eval", *files, "--index", str(out), "--mode", "hybrid", "--json"], env=env
        )
        assert res.exit_code == 0, res.output
        runs[backend] = json.loads(res.stdout)
    faiss_run, milvus_run = (runs[b] for b in ("faiss", "milvus"))
    assert len(faiss_run) == len(milvus_run) == 1  # one report over both files
    for a, b in zip(faiss_run, milvus_run, strict=True):
        assert a["questions"] == b["questions"] > 0
        assert abs(a["metrics"]["hit@1"] - b["metrics"]["hit@1"]) * a["questions"] <= 1 + 1e-9


def test_a_string_literal_finds_every_name_a_library_may_hold(tmp_path: Path) -> None:
    """The shared transcripts are named "… ｜ Huberman Lab Podcast #49.mp3.vtt":
    JSON's \\uXXXX escape, which Milvus rejects, once made `document_rows`
    fail on them (and the re-reading, which reads a window's neighbours)."""
    from pymilvus import DataType, MilvusClient

    from index.milvus import lit

    names = [
        "Erasing Fears ｜ Huberman Lab Podcast #49.mp3.vtt",
        'a "quoted" \\ name.md',
        "tab\there, new\nline, return\rhere",
        "bell\x07, backspace\b, form\f, vertical\v, nul\x00 and é",
    ]
    mc = MilvusClient(str(tmp_path / "lit.db"))
    try:
        schema = MilvusClient.create_schema(auto_id=False)
        schema.add_field("row", DataType.INT64, is_primary=True)
        schema.add_field("name", DataType.VARCHAR, max_length=200)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
        mc.create_collection("names", schema=schema)
        rows = [{"row": i, "name": n, "v": [0.6, 0.8]} for i, n in enumerate(names)]
        mc.insert("names", rows)
        for i, name in enumerate(names):
            got = mc.query("names", filter=f"name == {lit(name)}", output_fields=["row"])
            assert [r["row"] for r in got] == [i], name
        got = mc.query("names", filter=f"name in {lit(names[:2])}", output_fields=["row"])
        assert sorted(r["row"] for r in got) == [0, 1]
    finally:
        mc.close()
