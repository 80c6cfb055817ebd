"""Build an index directory from documents, aside, then publish it atomically.

Unchanged passages are never embedded twice: index/vectors.py reuses the
previous build's vectors wherever they still hold.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index import citecheck, store
from index.embedder import Embedder
from index.vectors import MODEL_WINDOWS, compute, passage_key, previous
from ingest.chunking import STRIDE_S, WINDOW_S
from ingest.chunking import passages as make_passages
from ingest.errors import BuildError, DocumentError
from ingest.records import Document, Passage

if TYPE_CHECKING:
    from numpy.typing import NDArray

KEEP_BUILDS = 2  # the live build and the one before it


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


def builds_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.builds"


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
) -> BuildReport:
    """Index ``documents`` into ``out``.  ``progress(done, total)`` counts passages embedded."""
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
    if out.exists() and not out.is_symlink() and not (out / store.MANIFEST).exists():
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
    vecs = compute(all_passages, docs, keys, embedder, previous(out, model), progress)
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
    _publish(out, all_passages, vectors, sentence_vectors, keys, manifest)
    return report


def _publish(
    out: Path,
    passages: list[Passage],
    vectors: NDArray[np.float32],
    sentence_vectors: NDArray[np.float16],
    keys: list[str],
    manifest: dict[str, Any],
) -> None:
    import faiss

    root = builds_dir(out)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    tmp = root / f"{stamp}-{os.getpid()}.partial"
    tmp.mkdir()
    try:
        with (tmp / store.PASSAGES).open("w", encoding="utf-8") as fh:
            for p in passages:
                fh.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
        np.save(tmp / store.VECTORS, vectors)
        np.save(tmp / store.SENTENCES, sentence_vectors)
        (tmp / store.KEYS).write_text("\n".join(keys) + "\n", encoding="utf-8")
        fidx = faiss.IndexFlatIP(vectors.shape[1])
        fidx.add(vectors)
        faiss.write_index(fidx, str(tmp / store.FAISS))
        from index.keyword import DIRNAME, write_keyword_index

        write_keyword_index(tmp / DIRNAME, passages)
        # The keyword files too: a corrupt BM25 file must fail load(verify=True) like any other.
        keyword_files = sorted(f"{DIRNAME}/{f.name}" for f in (tmp / DIRNAME).iterdir())
        names = [*store.DATA_FILES, *keyword_files]
        manifest["checksums"] = {n: store.file_sha256(tmp / n) for n in names}
        # The manifest is written last: a directory without one is never an index.
        (tmp / store.MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        final = tmp.with_suffix("")
        tmp.rename(final)
        _swap(out, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root, keep=os.readlink(out) if out.is_symlink() else None)


def _swap(out: Path, build_dir: Path) -> None:
    """Point ``out`` at ``build_dir`` in one step (rename of a symlink over a symlink)."""
    target = os.path.relpath(build_dir, out.parent)
    if out.exists() and not out.is_symlink():
        # A plain directory from an older layout: move it aside once.
        out.rename(builds_dir(out) / f"legacy-{os.getpid()}")
    link = out.parent / f".{out.name}.link-{os.getpid()}"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(target, link)
    os.replace(link, out)


def _prune(root: Path, keep: str | None) -> None:
    builds = sorted(
        (p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True
    )
    live = (root.parent / keep).resolve() if keep else None
    kept = 0
    for p in builds:
        if p.resolve() == live or (kept < KEEP_BUILDS and not p.name.endswith(".partial")):
            kept += 1
            continue
        shutil.rmtree(p, ignore_errors=True)
