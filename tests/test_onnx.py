"""The onnx backend: an int8 export of the packaged model, made once into a
model cache, whose vectors agree with torch's on real sentences."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index import SentenceTransformerEmbedder, onnx_model, open_index, search
from index.embedder import encode_pooled
from index.vectors import embed_input
from ingest import load, passages
from ingest.errors import PodciteError
from tests.conftest import CORPUS, ROOT


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def onnx(onnx_cache: Path) -> SentenceTransformerEmbedder:
    emb = SentenceTransformerEmbedder(backend="onnx", cache_dir=onnx_cache)
    emb.load()
    return emb


def corpus_sentences() -> list[str]:
    docs = load([CORPUS]).documents
    return [s.text for d in docs for s in d.sentences if len(s.text) > 20]


def cosines(a: Any, b: Any) -> Any:
    return np.einsum("ij,ij->i", a, b)


def assert_agree(texts: list[str], torch_emb: Any, onnx_emb: Any) -> None:
    """Each text alone (the query path) and all together (the batched path)."""
    one = cosines(
        np.stack([torch_emb.encode([t])[0] for t in texts]),
        np.stack([onnx_emb.encode([t])[0] for t in texts]),
    )
    batched = cosines(torch_emb.encode(texts), onnx_emb.encode(texts))
    for cos in (one, batched):
        # int8 weights move a vector by ~0.005 on average; short texts a little more.
        assert np.mean(cos) >= 0.99, np.sort(cos)[:5]
        assert np.min(cos) >= 0.98, np.sort(cos)[:5]


def test_vectors_agree_on_the_corpus(embedder: Any, onnx: SentenceTransformerEmbedder) -> None:
    texts = corpus_sentences()
    assert len(texts) >= 20
    assert_agree(texts, embedder, onnx)


@pytest.mark.shared
def test_vectors_agree_on_shared_wiki_sentences(
    shared: Path, embedder: Any, onnx: SentenceTransformerEmbedder
) -> None:
    pages = sorted((shared / "wiki" / "hubermanlab").glob("*.md"))
    docs = load(random.Random(0).sample(pages, 25)).documents
    texts = [s.text for d in docs for s in d.sentences if len(s.text) > 40]
    texts = random.Random(1).sample(texts, 50)
    assert_agree(texts, embedder, onnx)


def test_same_model_name_and_tokens(embedder: Any, onnx: SentenceTransformerEmbedder) -> None:
    """An index built with one backend is read with the other: the name in its
    manifest is the model's, the backend is apart."""
    assert onnx.name == embedder.name
    assert (onnx.backend, embedder.backend) == ("onnx", "torch")
    assert onnx.dimension == embedder.dimension and onnx.max_tokens == embedder.max_tokens
    long = " ".join(corpus_sentences())
    for text in ["5-HT2A receptor", "  Ketamine, at low doses?  ", long]:
        assert onnx.token_count(text) == embedder.token_count(text)
    assert onnx.token_count(long) > onnx.max_tokens


def test_the_export_is_cached(
    onnx: SentenceTransformerEmbedder, onnx_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_export(*_: Any) -> None:
        raise AssertionError("exported again")

    files = list(onnx_cache.rglob(onnx_model.MODEL_FILE))
    assert len(files) == 1 and "site-packages" not in str(files[0])
    before = files[0].stat().st_mtime_ns
    monkeypatch.setattr(onnx_model, "export_int8", no_export)
    again = SentenceTransformerEmbedder(backend="onnx", cache_dir=onnx_cache)
    q = "What does cold exposure do to dopamine?"
    assert float(again.encode([q])[0] @ onnx.encode([q])[0]) > 0.9999
    assert files[0].stat().st_mtime_ns == before
    assert not [p for p in files[0].parent.iterdir() if p.name.startswith(".export-")]


@pytest.mark.parametrize("damage", ["half file", "no record"])
def test_a_damaged_cache_is_made_anew(
    onnx: SentenceTransformerEmbedder, onnx_cache: Path, tmp_path: Path, damage: str
) -> None:
    """What a killed export or a bad disk leaves is never loaded: it is redone."""
    (good,) = onnx_cache.rglob(onnx_model.MODEL_FILE)
    cache = tmp_path / "cache"
    target = cache / good.relative_to(onnx_cache)
    target.parent.mkdir(parents=True)
    data = good.read_bytes()
    if damage == "half file":
        target.write_bytes(data[: len(data) // 2])
        target.with_suffix(".json").write_bytes(good.with_suffix(".json").read_bytes())
    else:  # the model in place, killed before its record was written
        target.write_bytes(data)
    emb = SentenceTransformerEmbedder(backend="onnx", cache_dir=cache)
    q = "How does light in the morning set the clock?"
    assert float(emb.encode([q])[0] @ onnx.encode([q])[0]) > 0.999
    assert onnx_model._valid(target)


def test_pooling_works_on_both_backends(embedder: Any, onnx: SentenceTransformerEmbedder) -> None:
    docs = load([CORPUS]).documents
    inputs = [embed_input(p) for d in docs for p in passages(d)][:12]
    texts, spans = [t for t, _ in inputs], [s for _, s in inputs]
    got = {}
    for emb in (embedder, onnx):
        pooled = emb.encode_spans(texts, spans)
        pvecs, svecs = pooled.passages, pooled.sentences
        assert [t.sentences for t in pooled.tokens] == [len(s) for s in spans]
        assert pvecs.shape == (len(texts), emb.dimension)
        assert [len(v) for v in svecs] == [len(s) for s in spans]
        assert np.allclose(np.linalg.norm(np.concatenate(svecs), axis=1), 1, atol=1e-4)
        # The passage vector from the pooling pass is the model's vector of the text.
        assert cosines(pvecs, emb.encode(texts)).min() > 0.9999
        got[emb.backend] = (pvecs, svecs)
    assert cosines(got["torch"][0], got["onnx"][0]).min() >= 0.98
    sent = cosines(np.concatenate(got["torch"][1]), np.concatenate(got["onnx"][1]))
    assert sent.mean() >= 0.99 and sent.min() >= 0.97
    # bench/best_sentence.py's entry point, on the public surface
    pvecs = encode_pooled(onnx, texts, spans).passages
    assert cosines(pvecs, got["onnx"][0]).min() > 0.9999


def test_the_fp32_export_gives_torchs_vectors(embedder: Any, onnx_cache: Path) -> None:
    """What ingest embeds passages with (PODCITE_INGEST_BACKEND=onnx-fp32): the
    export unquantised, so a build's vectors are torch's (pooled spans included)."""
    fp32 = SentenceTransformerEmbedder(backend="onnx-fp32", cache_dir=onnx_cache)
    docs = load([CORPUS]).documents
    inputs = [embed_input(p) for d in docs for p in passages(d)]
    texts, spans = [t for t, _ in inputs], [s for _, s in inputs]
    want, got = embedder.encode_spans(texts, spans), fp32.encode_spans(texts, spans)
    assert cosines(want.passages, got.passages).min() > 0.99999
    assert cosines(np.concatenate(want.sentences), np.concatenate(got.sentences)).min() > 0.9999
    # The stored tokens: the same words, and the same signs but for a rare
    # component within float noise of zero.
    pairs = zip(want.tokens, got.tokens, strict=True)
    assert all(np.array_equal(w.counts, g.counts) for w, g in pairs)
    bits = [np.unpackbits(t.bits) for t in (*want.tokens, *got.tokens)]
    half = len(bits) // 2
    same = np.concatenate(bits[:half]) == np.concatenate(bits[half:])
    assert same.mean() > 0.999
    assert fp32.name == embedder.name and fp32.dimension == embedder.dimension
    assert list(onnx_cache.rglob("model_fp32.onnx"))


def test_an_index_built_with_torch_is_searched_with_onnx(
    seed_index_dir: Path, seed_index: Any, onnx: SentenceTransformerEmbedder
) -> None:
    with_onnx = open_index(seed_index_dir, onnx)
    for q in ["psilocybin and serotonin receptors", "ketamine one to three hertz rhythm"]:
        want = search(seed_index, q, 1)[0]
        got = search(with_onnx, q, 1)[0]
        assert got.passage.id == want.passage.id
        assert abs(got.score - want.score) < 0.02


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(PodciteError, match="backend 'tensorflow'"):
        SentenceTransformerEmbedder(backend="tensorflow")  # type: ignore[arg-type]


def _imports(code: str) -> set[str]:
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}


def test_onnx_queries_never_import_torch(
    onnx: SentenceTransformerEmbedder, onnx_cache: Path
) -> None:
    imported = _imports(
        "from pathlib import Path\n"
        "from index.embedder import SentenceTransformerEmbedder\n"
        f"e = SentenceTransformerEmbedder(backend='onnx', cache_dir=Path({str(onnx_cache)!r}))\n"
        "assert e.encode(['sleep and light'])[0].shape == (384,)\n"
    )
    assert "onnxruntime" in imported
    assert "torch" not in imported and "transformers" not in imported


def test_help_imports_neither_torch_nor_onnxruntime() -> None:
    imported = _imports(
        "import sys; sys.argv = ['podcite', '--help']\n"
        "from server.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0\n"
    )
    assert "torch" not in imported and "onnxruntime" not in imported


def test_an_unwritable_cache_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go", encoding="utf-8")
    emb = SentenceTransformerEmbedder(backend="onnx", cache_dir=blocker)
    with pytest.raises(PodciteError, match=r"not-a-folder.*cannot write the onnx model cache"):
        emb.encode(["anything"])


def test_the_backend_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from server.settings import Settings

    # Questions onnx, passages torch: measured, docs/benchmarks.md
    assert (Settings().embed_backend, Settings().ingest_backend) == ("onnx", "torch")
    monkeypatch.setenv("PODCITE_EMBED_BACKEND", "torch")
    monkeypatch.setenv("PODCITE_INGEST_BACKEND", "onnx")
    assert (Settings().embed_backend, Settings().ingest_backend) == ("torch", "onnx")
    monkeypatch.setenv("PODCITE_EMBED_BACKEND", "tensorflow")
    with pytest.raises(ValidationError, match="embed_backend"):
        Settings()
