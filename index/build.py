"""Build an index from documents: passages, vectors, citation checks, manifest.

This module only computes; ``index.store`` writes the result aside, verifies
it and publishes it atomically.  Unchanged passages are never embedded twice:
index/vectors.py reuses the previous build's vectors wherever they still hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index import citecheck, store
from index.embedder import Embedder
from index.errors import BuildError
from index.vectors import MODEL_WINDOWS, Vectors, compute, passage_key, previous
from ingest.chunking import passages as make_passages
from ingest.errors import DocumentError
from ingest.records import Document, Passage
from ingest.windows import STRIDE_S, WINDOW_S

if TYPE_CHECKING:
    pass

@dataclass
class BuildReport:
    path: Path
    documents: int = 0
    passages: int = 0
    sentences: int = 0
    embedded: int = 0
    reused: int = 0
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def build(
    documents: Sequence[Document],
    out: Path,
    embedder: Embedder,
    *,
    errors: Sequence[DocumentError] = (),
    strict: bool = False,
    catalog_files: Sequence[Path] = (),
    progress: Callable[[int, int], None] | None = None,
    window_s: float = WINDOW_S,
    stride_s: float = STRIDE_S,
    publish: Callable[[Path, store.Stored], object] = store.publish,
    compute_vectors: Callable[..., Vectors] = compute,
) -> BuildReport:
    """Index ``documents`` into ``out``.  ``progress(done, total)`` counts passages embedded.
    ``publish`` writes the result (the index directory; ``index.milvus_store`` for
    Milvus) and ``compute_vectors`` computes the vectors (``index.vectors.compute``;
    on Ray, ``index.ray_ingest``)."""
    t0 = time.perf_counter()
    out = Path(out)
    report = BuildReport(path=out)
    report.errors = [str(e) for e in errors]
    report.warnings = [str(i) for d in documents for i in d.issues]
    if strict and (report.errors or report.warnings):
        first = (report.errors + report.warnings)[0]
        raise BuildError(
            f"--strict: {len(report.errors + report.warnings)} problem(s), first: {first}"
        )
    if not documents:
        raise BuildError(
            "no documents to index" + (f"; first error: {report.errors[0]}" if errors else "")
        )
    if store.is_foreign(out):
        raise BuildError(f"{out} exists and is not a podcite index; choose another --index")

    all_passages: list[Passage] = []
    per_doc: dict[str, int] = {}
    for doc in documents:
        ps = make_passages(doc, window_s=window_s, stride_s=stride_s)
        per_doc[doc.id] = len(ps)
        all_passages.extend(ps)
    if not all_passages:
        raise BuildError("the documents hold no indexable text")

    model = embedder.name
    docs = {d.id: d for d in documents}
    keys = [passage_key(model, p, docs[p.document_id]) for p in all_passages]
    vecs = compute_vectors(all_passages, docs, keys, embedder, previous(out, model), progress)
    report.embedded, report.reused = vecs.embedded, vecs.reused
    vectors, sent_rows = vecs.passages, vecs.sentences
    sentence_vectors = np.concatenate(sent_rows).astype(np.float16)
    # Wiki citations checked against transcripts of the same episode in this build.
    all_passages, citations = citecheck.verify(
        all_passages, [r.astype(np.float32) for r in sent_rows]
    )

    report.documents = len(documents)
    report.passages = len(all_passages)
    report.sentences = int(sentence_vectors.shape[0])
    manifest: dict[str, Any] = {
        "format_version": store.FORMAT_VERSION,
        "model": {"name": model},
        "dimension": embedder.dimension,
        "similarity": "cosine (inner product of L2-normalised vectors)",
        "counts": {
            "documents": report.documents,
            "passages": report.passages,
            "sentences": report.sentences,
        },
        "documents": {
            d.id: {
                "path": d.path,
                "sha256": d.sha256,
                "kind": d.kind,
                "title": d.title,
                "episode": d.episode.id if d.episode else None,
                "passages": per_doc[d.id],
            }
            for d in documents
        },
        "catalogs": [str(p) for p in catalog_files],
        "citations_checked": dict(citations),
        "transcript_windows": {
            "window_s": window_s,
            "stride_s": stride_s,
            "model_windows": MODEL_WINDOWS,
        },
        "warnings": report.warnings,
        "errors": report.errors,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    report.seconds = time.perf_counter() - t0
    manifest["build_seconds"] = round(report.seconds, 2)
    publish(out, store.Stored(manifest, all_passages, vectors, sentence_vectors, keys))
    return report
