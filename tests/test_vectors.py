"""Transcript windows pooled from sentence vectors, checked against the model
itself, and reused across rebuilds (index/vectors.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index import build
from index.store import load
from index.vectors import pool
from ingest import load as load_docs

LINES = [
    "Morning sunlight in the eyes sets the timing of the circadian clock.",
    "Try to get outside within an hour of waking, even on cloudy days.",
    "Bright light late at night does the opposite and delays sleep.",
    "Caffeine blocks adenosine, the molecule that builds sleep pressure.",
    "Waiting ninety minutes after waking before coffee avoids the afternoon crash.",
    "Cold water immersion raises dopamine for several hours afterwards.",
    "The effect lasts far longer than the cold exposure itself.",
    "Deliberate heat, such as a sauna, can increase growth hormone.",
    "Breathing with two inhales and a long exhale calms you quickly.",
    "This physiological sigh offloads carbon dioxide from the lungs.",
    "Zone two cardio builds the mitochondria in your muscle cells.",
    "Resistance training twice a week preserves strength with age.",
    "Naps shorter than twenty minutes restore alertness without grogginess.",
    "Non sleep deep rest protocols help people who cannot nap.",
    "Alcohol fragments sleep architecture even in small amounts.",
    "The gut microbiome talks to the brain through the vagus nerve.",
    "Fermented foods increase the diversity of gut bacteria.",
    "Fiber alone did not reduce inflammation markers in that study.",
    "Dopamine is about motivation and pursuit more than pleasure.",
    "Spiking dopamine before effort can undermine later motivation.",
]


def vtt(lines: list[str], cue_s: float = 4.0, repeat: int = 3) -> str:
    out = ["WEBVTT", ""]
    t = 0.0
    for r in range(repeat):
        for line in lines[r:] + lines[:r]:  # not periodic: every window differs
            out += [f"{clock(t)} --> {clock(t + cue_s)}", line, ""]
            t += cue_s
    return "\n".join(out)


def clock(t: float) -> str:
    return f"{int(t // 60):02d}:{t % 60:06.3f}"


@pytest.fixture
def transcripts(tmp_path: Path) -> Path:
    folder = tmp_path / "talks"
    folder.mkdir()
    (folder / "Light and Sleep ｜ Test Podcast #1.vtt").write_text(vtt(LINES), encoding="utf-8")
    (folder / "Cold and Heat ｜ Test Podcast #2.vtt").write_text(vtt(LINES[::-1]), encoding="utf-8")
    return folder


def test_pool_is_a_length_weighted_normalised_mean() -> None:
    v = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    got = pool(v, [3, 1])
    assert np.allclose(got, np.array([3.0, 1.0]) / np.sqrt(10))
    assert got.dtype == np.float32


def test_pooled_windows_agree_with_the_model(
    transcripts: Path, tmp_path: Path, embedder: Any
) -> None:
    """The reference comparison: a window's pooled vector against the model's own
    vector for the window's text (what embedding every window would give)."""
    out = tmp_path / "index"
    build(load_docs([transcripts]).documents, out, embedder)
    index = load(out)
    windows = [p for p in index.passages if p.kind == "transcript"]
    assert len(windows) > 4 and len({(p.document_id, p.span) for p in windows}) == len(windows)
    own = embedder.encode([p.embed_text() for p in windows])
    rows = [index.passages.index(p) for p in windows]
    pooled = index.vectors[rows]
    cos = np.einsum("ij,ij->i", pooled, own)
    # 0.95 on average here, 0.94 over 500 windows of the shared transcripts
    # (bench/windows.py --fidelity, docs/benchmarks.md).
    assert cos.min() > 0.9 and cos.mean() > 0.93, cos


def test_rebuilds_reuse_sentence_vectors_across_window_choices(
    transcripts: Path, tmp_path: Path, embedder: Any
) -> None:
    docs = load_docs([transcripts]).documents
    out = tmp_path / "index"
    first = build(docs, out, embedder)
    assert first.embedded == first.passages and first.reused == 0
    again = build(docs, out, embedder)
    assert again.embedded == 0 and again.reused == first.passages
    # Another window choice: new windows, the same sentences, nothing embedded...
    wide = build(docs, out, embedder, window_s=90, stride_s=45)
    assert wide.embedded == 0 and wide.passages != first.passages
    # ...and the same vectors as a fresh build of that choice.
    fresh = tmp_path / "fresh"
    build(docs, fresh, embedder, window_s=90, stride_s=45)
    a, b = load(out, searchable=False), load(fresh, searchable=False)
    assert [p.id for p in a.passages] == [p.id for p in b.passages]
    assert np.allclose(a.vectors, b.vectors, atol=1e-6)
    assert np.array_equal(a.sentence_vectors, b.sentence_vectors)


def test_changing_one_transcript_embeds_only_its_windows(
    transcripts: Path, tmp_path: Path, embedder: Any
) -> None:
    out = tmp_path / "index"
    first = build(load_docs([transcripts]).documents, out, embedder)
    changed = next(transcripts.glob("Cold*"))
    changed.write_text(vtt(LINES[::-1], repeat=2), encoding="utf-8")
    docs = load_docs([transcripts]).documents
    again = build(docs, out, embedder)
    per_doc = load(out, searchable=False).manifest["documents"]
    cold = next(d for d in per_doc.values() if d["title"].startswith("Cold"))
    assert again.embedded == cold["passages"]
    assert again.reused == again.passages - cold["passages"] > 0
    assert again.passages < first.passages


def test_loading_for_a_rebuild_keeps_torch_threads(seed_index_dir: Path) -> None:
    """faiss and torch share OpenMP: the search-time single thread must not
    leak into embedding (a rebuild opens its previous index first)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        load(seed_index_dir, searchable=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
