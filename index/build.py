"""Build an index from documents: passages, vectors, citation checks, manifest.

This module only computes; ``index.store`` writes the result aside, verifies
it and publishes it atomically.  Unchanged passages are never embedded twice:
index/vectors.py reuses the previous build's vectors wherever they still hold,
and only after ``store.previous`` verified that build against its checksums.

A build adds to and updates the index it replaces (the rule the README states):
documents given now are added or, when their id is known, updated; the
previous build's other documents are kept, carried over with their vectors,
unless their file is gone and either ``prune`` is set or the file lay under a
folder given now (a folder ingested whole).  ``replace`` keeps nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from index import citecheck, store
from index.embedder import Embedder
from index.errors import BuildError
from index.library import episode_entries
from index.training import model_record
from index.vectors import MODEL_WINDOWS, Vectors, compute, passage_key, previous
from ingest.chunking import passages as make_passages
from ingest.errors import DocumentError, PodciteError
from ingest.records import Document, Passage
from ingest.windows import STRIDE_S, WINDOW_S


@dataclass
class BuildReport:
    path: Path
    added: list[str] = field(default_factory=list)  # document ids
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # unchanged, given again or carried over
    documents: int = 0
    passages: int = 0
    sentences: int = 0
    embedded: int = 0
    reused: int = 0
    warnings: list[str] = field(default_factory=list)  # repaired problems in documents
    notes: list[str] = field(default_factory=list)  # facts, not problems (ParseIssue.note)
    errors: list[str] = field(default_factory=list)  # documents skipped
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
    roots: Sequence[Path] = (),
    prune: bool = False,
    replace: bool = False,
    publish: Callable[[Path, store.Stored], object] = store.publish,
    compute_vectors: Callable[..., Vectors] = compute,
) -> BuildReport:
    """Index ``documents`` into ``out`` (see the module docstring for what is kept);
    ``roots`` are the folders given whole.  ``progress(done, total)`` counts
    passages embedded.  One writer at a time: the index's lock is held throughout.
    ``publish`` writes the result (the index directory; ``index.milvus_store`` for
    Milvus) and ``compute_vectors`` computes the vectors (``index.vectors.compute``;
    on Ray, ``index.ray_ingest``)."""
    if store.is_foreign(Path(out)):
        raise BuildError(f"{out} exists and is not a podcite index; choose another --index")
    with store.lock(Path(out)):
        return _build(
            documents,
            Path(out),
            embedder,
            errors,
            strict,
            catalog_files,
            progress,
            (window_s, stride_s),
            (roots, prune, replace),
            (publish, compute_vectors),
        )


def _build(
    documents: Sequence[Document],
    out: Path,
    embedder: Embedder,
    errors: Sequence[DocumentError],
    strict: bool,
    catalog_files: Sequence[Path],
    progress: Callable[[int, int], None] | None,
    windows: tuple[float, float],
    keep: tuple[Sequence[Path], bool, bool],
    hooks: tuple[Callable[[Path, store.Stored], object], Callable[..., Vectors]],
) -> BuildReport:
    publish, compute_vectors = hooks
    t0 = time.perf_counter()
    (window_s, stride_s), (roots, prune, replace) = windows, keep
    out = Path(out)
    report = BuildReport(path=out)
    report.errors = [str(e) for e in errors]
    report.warnings = [str(i) for d in documents for i in d.issues if not i.note]
    report.notes = [str(i) for d in documents for i in d.issues if i.note]
    if strict and (report.errors or report.warnings):
        raise BuildError(strict_failure(report))
    if not documents:
        raise BuildError(
            "no documents to index" + (f"; first error: {report.errors[0]}" if errors else "")
        )
    model = embedder.name
    docs = {d.id: d for d in documents}
    old, warning = store.previous(out)
    if warning:
        report.warnings.append(warning)
    if replace:
        report.added = [d.id for d in documents]
        report.removed = [d for d in (old.manifest["documents"] if old else {}) if d not in docs]
    carry = [] if replace else _carried(old, out, documents, roots, prune, report, warning)
    if carry and old is not None and old.model != model:
        raise BuildError(
            f"{out} was built with the model {old.model!r}, this ingest uses {model!r}; "
            "ingest everything again with --replace, or choose another --index"
        )

    all_passages: list[Passage] = []
    per_doc: dict[str, int] = {}
    for doc in documents:
        ps = make_passages(doc, window_s=window_s, stride_s=stride_s)
        per_doc[doc.id] = len(ps)
        all_passages.extend(ps)
    if not all_passages:
        raise BuildError("the documents hold no indexable text")

    keys = [passage_key(model, p, docs[p.document_id]) for p in all_passages]
    vecs = compute_vectors(all_passages, docs, keys, embedder, previous(old, model), progress)
    report.embedded, report.reused = vecs.embedded, vecs.reused
    vectors, sent_rows = vecs.passages, vecs.sentences
    if carry and old is not None:  # kept documents: their rows as the verified build has them
        rows = [i for i, p in enumerate(old.passages) if p.document_id in set(carry)]
        all_passages = [*all_passages, *(old.passages[i] for i in rows)]
        keys = [*keys, *(old.keys[i] for i in rows)]
        vectors = np.concatenate([vectors, old.vectors[rows]]).astype(np.float32)
        sent_rows = [*sent_rows, *(old.sentence_vectors_of(i) for i in rows)]
        report.reused += len(rows)
    sentence_vectors = np.concatenate(sent_rows).astype(np.float16)
    # Wiki citations checked against transcripts of the same episode in this build.
    all_passages, citations = citecheck.verify(
        all_passages, [r.astype(np.float32) for r in sent_rows]
    )

    report.documents = len(documents) + len(carry)
    report.passages = len(all_passages)
    report.sentences = int(sentence_vectors.shape[0])
    old_catalogs = old.manifest.get("catalogs", []) if carry and old is not None else []
    manifest: dict[str, Any] = {
        "format_version": store.FORMAT_VERSION,
        "model": model_record(model, getattr(embedder, "model_dir", None)),
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
                "file": str(Path(d.path).resolve()),
            }
            for d in documents
        }
        | {d: old.manifest["documents"][d] for d in carry if old is not None},
        # index/library.py: the page's episode list (kept documents' entries carried over)
        "episodes": episode_entries(documents, _kept_episodes(old, carry)),
        "catalogs": list(dict.fromkeys([*old_catalogs, *(str(p) for p in catalog_files)])),
        "citations_checked": dict(citations),
        "transcript_windows": {
            "window_s": window_s,
            "stride_s": stride_s,
            "model_windows": MODEL_WINDOWS,
        },
        "warnings": report.warnings,
        "notes": report.notes,
        "errors": report.errors,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    report.seconds = time.perf_counter() - t0
    manifest["build_seconds"] = round(report.seconds, 2)
    publish(out, store.Stored(manifest, all_passages, vectors, sentence_vectors, keys))
    return report


def strict_failure(report: BuildReport) -> str:
    """``--strict``'s refusal: every problem, one per line (notes are not problems)."""
    problems = [f"  error: {e}" for e in report.errors]
    problems += [f"  warning: {w}" for w in report.warnings]
    counted = f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)"
    notes = f"; {len(report.notes)} note(s) not counted" if report.notes else ""
    return "\n".join([f"--strict: nothing indexed: {counted}{notes}", *problems])


def _carried(
    old: store.Stored | None,
    out: Path,
    documents: Sequence[Document],
    roots: Sequence[Path],
    prune: bool,
    report: BuildReport,
    warning: str | None,
) -> list[str]:
    """Sort the previous build's documents into updated/kept/removed; the ids to carry."""
    given = {d.id: d for d in documents}
    if old is None:
        if warning and not _all_given(out, given):
            raise BuildError(
                f"{warning}; its documents cannot be carried over: ingest everything "
                "again with --replace"
            )
        report.added = list(given)
        return []
    before: dict[str, dict[str, Any]] = old.manifest.get("documents", {})
    for d in documents:
        if d.id not in before:
            report.added.append(d.id)
        elif before[d.id].get("sha256") != d.sha256:
            report.updated.append(d.id)
        else:
            report.kept.append(d.id)
    folders = [Path(r).resolve() for r in roots]
    carry: list[str] = []
    for doc_id, info in before.items():
        if doc_id in given:
            continue
        f = Path(str(info.get("file") or info.get("path", "")))
        gone = not f.exists()
        if gone and (prune or any(f.resolve().is_relative_to(r) for r in folders)):
            report.removed.append(doc_id)
        else:
            carry.append(doc_id)
    report.kept.extend(carry)
    return carry


def _all_given(out: Path, given: dict[str, Document]) -> bool:
    """Whether a broken previous build's documents (by its manifest) are all given now."""
    try:
        return set(store.read_manifest(out).get("documents", {})) <= set(given)
    except PodciteError:
        return False


def _kept_episodes(old: store.Stored | None, carry: Sequence[str]) -> list[dict[str, Any]]:
    """The previous manifest's episode entries of the documents carried over."""
    if old is None or not carry:
        return []
    ids = {old.manifest["documents"][d].get("episode") for d in carry}
    return [e for e in old.manifest.get("episodes", []) if e.get("id") in ids]
