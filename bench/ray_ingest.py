"""Ingest throughput: in-process against `podcite ingest --ray` (a local Ray with
2 workers) on one fixed subset of the shared library, interleaved.

    .venv/bin/python bench/ray_ingest.py [--pages 60] [--transcripts 4] [--rounds 2]

The subset: the first ``--pages`` wiki pages (sorted by path), the first
``--transcripts`` transcripts and the catalogs.  Each round builds the same
subset both ways into fresh folders (nothing reused).  Ray's start-up (once)
is timed apart; the Ray figure is the job (parse + embed) plus the driver's
assembly and publish.  Prints JSON lines: seconds and passages/s per run, and
whether the two indexes agree (passage ids equal, largest vector difference).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def subset(pages: int, transcripts: int) -> list[Path]:
    wiki = sorted((SHARED / "wiki").rglob("*.md"))[:pages]
    vtt = sorted((SHARED / "transcripts").glob("*.vtt"))[:transcripts]
    catalogs = [SHARED / "catalog" / "transcripts.csv", SHARED / "catalog" / "episodes.csv"]
    return [*wiki, *vtt, *catalogs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=60)
    ap.add_argument("--transcripts", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    from index import build, ray_ingest, store
    from index.embedder import SentenceTransformerEmbedder
    from ingest import load
    from ingest.windows import STRIDE_S, WINDOW_S

    paths = subset(args.pages, args.transcripts)
    embedder = SentenceTransformerEmbedder()
    embedder.encode(["load the model"])
    t0 = time.perf_counter()
    ray_ingest.start(None, workers=2)
    print(json.dumps({"ray start s": round(time.perf_counter() - t0, 1)}), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            here, on_ray = Path(tmp) / f"here{r}" / "index", Path(tmp) / f"ray{r}" / "index"
            t0 = time.perf_counter()
            loaded = load(paths)
            rep = build(loaded.documents, here, embedder, catalog_files=loaded.catalog_files)
            s_here = time.perf_counter() - t0
            t0 = time.perf_counter()
            got = ray_ingest.run(paths, workers=2, window_s=WINDOW_S, stride_s=STRIDE_S)
            build(
                got.documents,
                on_ray,
                embedder,
                catalog_files=got.catalog_files,
                compute_vectors=ray_ingest.assembled(got),
            )
            s_ray = time.perf_counter() - t0
            a, b = store.load(here, verify=False), store.load(on_ray, verify=False)
            print(
                json.dumps(
                    {
                        "round": r,
                        "documents": rep.documents,
                        "passages": rep.passages,
                        "in-process s": round(s_here, 1),
                        "ray s": round(s_ray, 1),
                        "in-process passages/s": round(rep.passages / s_here, 1),
                        "ray passages/s": round(rep.passages / s_ray, 1),
                        "same ids": [p.id for p in a.passages] == [p.id for p in b.passages],
                        "max vector diff": float(np.abs(a.vectors - b.vectors).max()),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
