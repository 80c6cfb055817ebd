"""Re-ingesting a library with one file changed: the other documents are carried
over without being parsed (ingest/loader.py ``Known``, index/carry.py), and the
index is the one a fresh build of the same files gives."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index import keyword, store
from index.records import RerankSettings
from index.search import search
from index.serial import passage_to_dict
from ingest import loader
from server.ingesting import do_ingest
from server.runtime import open_for_queries, rereading_warning
from server.settings import Settings
from tests import ui_corpus


def _ingest(corpus: Path, index_dir: Path) -> Any:
    return do_ingest([corpus], Settings(index_dir=index_dir), strict=False, quiet=True)


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the documents the loader parses."""
    seen: list[str] = []
    real = loader._parse

    def counting(path: Path, doc_id: str, *args: Any) -> Any:
        seen.append(doc_id)
        return real(path, doc_id, *args)

    monkeypatch.setattr(loader, "_parse", counting)
    return seen


def _snapshot(index_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest's documents and counts, and every passage by id with its
    record, vectors, embedding key, keyword tokens and BM25 score for a question."""
    s = store.load(index_dir, verify="full", searchable=False)
    assert s.keyword is not None and s.tokens is not None
    bm25 = s.keyword.scores("ketamine dissociation receptor")
    rows = {}
    for i in range(len(s.passages)):
        p = s.passages[i]
        rows[p.id] = (
            passage_to_dict(p),
            np.asarray(s.vectors[i]).copy(),
            np.asarray(s.sentence_vectors_of(i)).copy(),
            s.keys[i],
            s.tokens[i],
            round(float(bm25[i]), 5),
            s.tokens_of(i),
        )
    m = s.manifest
    docs = {d: {k: v for k, v in e.items() if k != "file"} for d, e in m["documents"].items()}
    head = {"documents": docs, "counts": m["counts"], "citations": m["citations_checked"]}
    return head | {"warnings": sorted(m["warnings"])}, rows


def _same(a: Path, b: Path) -> None:
    (ma, ra), (mb, rb) = _snapshot(a), _snapshot(b)
    assert ma == mb
    assert ra.keys() == rb.keys()
    for pid, (rec, vec, sents, key, tokens, score, bits) in ra.items():
        rec2, vec2, sents2, key2, tokens2, score2, bits2 = rb[pid]
        assert (rec, key, tokens, score) == (rec2, key2, tokens2, score2), pid
        # The model's batches differ between the two builds, which moves the
        # last digits (docs/benchmarks.md, "Milvus and Ray") and may flip the sign
        # of a component within float noise of 0; nothing else may differ.
        np.testing.assert_allclose(vec, vec2, atol=1e-4)
        np.testing.assert_allclose(sents, sents2, atol=1e-3)
        assert bits.counts.tolist() == bits2.counts.tolist(), pid
        assert (np.unpackbits(bits.bits) == np.unpackbits(bits2.bits)).mean() > 0.999, pid


def test_one_changed_file_is_all_that_is_parsed_and_the_index_is_a_fresh_builds(
    tmp_path: Path, parsed: list[str]
) -> None:
    corpus = ui_corpus.make(tmp_path / "corpus")
    live = tmp_path / "live"
    _ingest(corpus, live)
    everything = sorted(parsed)
    assert len(everything) == 3  # the seed page and two transcripts

    parsed.clear()
    again = _ingest(corpus, live)
    assert parsed == []  # nothing changed: nothing parsed
    assert sorted(again.kept) == everything and not again.updated
    assert again.embedded == 0

    seed = corpus / "hubermanlab-experimental-depression-treatments.txt"
    added = "\nKetamine also acts on the NMDA receptor [00:02:00].\n"
    seed.write_text(seed.read_text(encoding="utf-8") + added, encoding="utf-8")
    parsed.clear()
    changed = _ingest(corpus, live)
    assert parsed == [seed.name]
    assert changed.updated == [seed.name]
    _ingest(corpus, tmp_path / "fresh")
    _same(live, tmp_path / "fresh")

    # A transcript goes: the seed page's citations of its episode lose their verdicts.
    (corpus / "depression-episode.vtt").unlink()
    parsed.clear()
    gone = _ingest(corpus, live)
    assert gone.removed == ["depression-episode.vtt"] and parsed == []
    _ingest(corpus, tmp_path / "fresh2")
    _same(live, tmp_path / "fresh2")


def test_a_new_tokenizer_tokenises_the_carried_rows_again(
    tmp_path: Path, parsed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing changed on disk, so every document is carried over unparsed; the
    # keyword tokens must still be today's, as a fresh build makes them.
    corpus = ui_corpus.make(tmp_path / "corpus")
    live = tmp_path / "live"
    _ingest(corpus, live)
    real = keyword.normalise_tokens
    monkeypatch.setattr(keyword, "normalise_tokens", lambda text: [*real(text), "newtoken"])
    monkeypatch.setattr(keyword, "TOKENIZER_VERSION", keyword.TOKENIZER_VERSION + 1)
    parsed.clear()
    again = _ingest(corpus, live)
    assert parsed == [] and again.embedded == 0
    _ingest(corpus, tmp_path / "fresh")
    _same(live, tmp_path / "fresh")
    assert all(line.endswith("newtoken") for line in store.load(live).tokens or ())


def test_a_changed_catalog_parses_everything_again(tmp_path: Path, parsed: list[str]) -> None:
    corpus = ui_corpus.make(tmp_path / "corpus")
    live = tmp_path / "live"
    _ingest(corpus, live)
    catalog = corpus / "catalog.csv"
    catalog.write_text(
        catalog.read_text(encoding="utf-8").replace("Master Your Sleep", "Master Your Sleep!"),
        encoding="utf-8",
    )
    parsed.clear()
    _ingest(corpus, live)
    assert len(parsed) == 3
    _ingest(corpus, tmp_path / "fresh")
    _same(live, tmp_path / "fresh")


def _as_before_stored_tokens(index_dir: Path) -> None:
    """Make a build look as one made before podcite stored token vectors: the
    two files gone, and the manifest (checksums, sizes, its own) without them."""
    live = index_dir.resolve()
    manifest = json.loads((live / store.MANIFEST).read_text(encoding="utf-8"))
    for name in (store.SIGN_BITS, store.SIGN_STARTS):
        (live / name).unlink()
        del manifest["checksums"][name], manifest["sizes"][name]
    manifest[store.SELF] = store.manifest_digest(manifest)
    (live / store.MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    assert store.load(index_dir, verify="full").token_bits is None


def test_a_build_before_stored_tokens_is_embedded_again_to_store_them(
    tmp_path: Path, parsed: list[str]
) -> None:
    corpus = ui_corpus.make(tmp_path / "corpus")
    live = tmp_path / "live"
    _ingest(corpus, live)
    _as_before_stored_tokens(live)
    # Every document given again, unchanged: parsed and embedded again, once,
    # so that the new build stores every row's tokens.
    parsed.clear()
    again = _ingest(corpus, live)
    assert len(parsed) == 3 and again.embedded == again.passages
    assert not any("token vectors" in n for n in again.notes)
    _ingest(corpus, tmp_path / "fresh")
    _same(live, tmp_path / "fresh")

    # A document not given now is carried over as its build has it: without
    # tokens, so the build stores none, says so, and the re-reading embeds its
    # candidates instead.
    _as_before_stored_tokens(live)
    seed = corpus / "hubermanlab-experimental-depression-treatments.txt"
    some = [seed, corpus / "sleep-episode.vtt", corpus / "catalog.csv"]
    report = do_ingest(some, Settings(index_dir=live), strict=False, quiet=True)
    assert "depression-episode.vtt" in report.kept
    assert any("token vectors not stored" in n for n in report.notes)
    assert store.load(live).token_bits is None
    idx = open_for_queries(Settings(index_dir=live))
    # `podcite serve` says what that costs, unless the re-reading is off.
    warning = rereading_warning(Settings(index_dir=live))
    assert warning is not None and "stores no token vectors" in warning
    assert rereading_warning(Settings(index_dir=live, rerank=0)) is None
    assert rereading_warning(Settings(index_dir=tmp_path / "fresh")) is None
    hits = search(idx, "ketamine depression", 5, rerank=RerankSettings(top=5))
    assert hits and hits == search(idx, "ketamine depression", 5, rerank=RerankSettings(top=5))


def test_known_lists_unchanged_files_and_parses_the_rest(tmp_path: Path) -> None:
    corpus = ui_corpus.make(tmp_path / "corpus")
    first = loader.load([corpus])
    assert first.fingerprint and not first.unchanged
    known = loader.Known({d.id: (d.sha256, first.fingerprint) for d in first.documents})
    second = loader.load([corpus], known=known)
    assert second.documents == [] and len(second.unchanged) == 3
    (corpus / "sleep-episode.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:02.000\nNew.\n")
    third = loader.load([corpus], known=known)
    assert [d.id for d in third.documents] == ["sleep-episode.vtt"]
    assert len(third.unchanged) == 2


def test_sentence_runs_are_the_sentence_rows_in_contiguous_pieces() -> None:
    """Pure: the runs, expanded, are exactly ``sentence_rows`` (checked against it
    on hand-made and random row sets, empty passages and gaps included)."""
    from index.carry import sentence_rows, sentence_runs

    counts = np.array([3, 0, 2, 4, 1, 0, 5], dtype=np.int32)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    rng = np.random.default_rng(7)
    cases = [np.arange(7), np.array([0, 2, 3]), np.array([1, 5]), np.array([], dtype=np.intp)]
    cases += [np.sort(rng.choice(7, size=k, replace=False)) for k in range(1, 7) for _ in range(5)]
    for rows in cases:
        rows = rows.astype(np.intp)
        runs = sentence_runs(starts, counts, rows)
        expanded = [i for a, b in runs for i in range(a, b)]
        assert expanded == sentence_rows(starts, counts, rows).tolist()
        assert all(b > a for a, b in runs)
        assert all(b1 < a2 for (_, b1), (a2, _) in itertools.pairwise(runs))
    assert sentence_runs(starts, counts, np.arange(7, dtype=np.intp)) == [(0, 15)]
