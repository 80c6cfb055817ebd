"""`podcite ingest --ray`: a local Ray with 2 workers gives the index the
in-process ingest gives (same passage ids, vectors within float tolerance), and
reports a bad file as the in-process ingest does.  One Ray session serves the
module (it takes ~10 s to start)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray")

from index import build, ray_ingest, store
from ingest import load
from ingest.windows import STRIDE_S, WINDOW_S
from tests.conftest import CORPUS, SHARED

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray

    ray_ingest.start(None, workers=2)
    yield
    ray.shutdown()


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """The seed, plus (where the shared data is) two wiki pages and one transcript
    with its catalog, and one file that is not UTF-8."""
    root = tmp_path / "corpus"
    shutil.copytree(CORPUS, root)
    if (SHARED / "wiki").is_dir():
        pages = sorted((SHARED / "wiki" / "hubermanlab").glob("*.md"))[1:3]
        for p in pages:
            shutil.copy(p, root / p.name)
        transcript = sorted((SHARED / "transcripts").glob("*.vtt"))[0]
        shutil.copy(transcript, root / transcript.name)
        shutil.copy(SHARED / "catalog" / "transcripts.csv", root / "transcripts.csv")
    (root / "broken.txt").write_bytes(b"\xff\xfe not utf-8 \xff")
    return root


def test_ray_ingest_gives_the_same_index(
    local_ray: None, small_corpus: Path, tmp_path: Path, embedder: Any
) -> None:
    got = ray_ingest.run([small_corpus], workers=2, window_s=WINDOW_S, stride_s=STRIDE_S)
    loaded = load([small_corpus])
    assert [d.id for d in got.documents] == [d.id for d in loaded.documents]
    assert [str(e) for e in got.errors] == [str(e) for e in loaded.errors]
    assert any("broken.txt" in str(e) for e in got.errors)

    on_ray, here = tmp_path / "ray" / "index", tmp_path / "here" / "index"
    build(
        got.documents,
        on_ray,
        embedder,
        errors=got.errors,
        catalog_files=got.catalog_files,
        compute_vectors=ray_ingest.assembled(got),
    )
    build(
        loaded.documents, here, embedder, errors=loaded.errors, catalog_files=loaded.catalog_files
    )
    a, b = store.load(on_ray), store.load(here)
    assert [p.id for p in a.passages] == [p.id for p in b.passages]
    assert list(a.passages) == list(b.passages)
    assert list(a.keys) == list(b.keys)
    assert np.allclose(a.vectors, b.vectors, atol=1e-4)  # batches differ: 1.3e-5 measured
    assert np.allclose(
        a.sentence_vectors.astype(np.float32), b.sentence_vectors.astype(np.float32), atol=2e-3
    )
    assert a.manifest["documents"] == b.manifest["documents"]
    assert a.manifest["errors"] == b.manifest["errors"]


def test_cli_ingest_on_ray_into_milvus(
    local_ray: None, tmp_path: Path, seed_index_dir: Path
) -> None:
    """`podcite ingest --ray local` with PODCITE_BACKEND=milvus: the Ray job's index
    published to a Milvus collection, the same passages as the seed index."""
    pytest.importorskip("milvus_lite")
    from typer.testing import CliRunner

    from index import milvus_store as ms
    from server.cli import app

    uri = tmp_path / "ray.db"
    env = {"PODCITE_BACKEND": "milvus", "PODCITE_MILVUS_URI": str(uri)}
    res = CliRunner().invoke(
        app, ["ingest", str(CORPUS), "--index", str(tmp_path / "unused"), "--ray", "local"], env=env
    )
    assert res.exit_code == 0, res.output
    mc = ms.client(str(uri))
    try:
        live = ms.resolve(mc, "podcite")
        seed = store.load(seed_index_dir)
        assert ms.count(mc, live) == len(seed.passages)
        assert ms.read_manifest(mc, live)["counts"] == seed.manifest["counts"]
    finally:
        ms.close(mc, str(uri))


def test_a_real_clusters_gcs_address_passes_the_address_check(local_ray: None) -> None:
    """The greeting ``check_address`` sends is one Ray's own GCS answers."""
    import ray

    ray_ingest.check_address(ray.get_runtime_context().gcs_address)
