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
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index import carry, citecheck, store
from index.embedder import Embedder
from index.errors import BuildError, MustParse
from index.keyword import passage_tokens
from index.library import episode_entries, kept_entries
from index.rows import Carried, PassageTable
from index.tokens import concat, sentences_of, width
from index.training import model_record
from index.vectors import MODEL_WINDOWS, Vectors, compute, passage_key, previous, said_key
from ingest.chunking import passages as make_passages
from ingest.errors import DocumentError, PodciteError
from ingest.loader import Unchanged
from ingest.records import Document, Passage
from ingest.windows import STRIDE_S, WINDOW_S

if TYPE_CHECKING:
    from numpy.typing import NDArray


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
    unchanged: Sequence[Unchanged] = (),
    fingerprint: str | None = None,
) -> BuildReport:
    """Index ``documents`` into ``out`` (see the module docstring for what is kept);
    ``roots`` are the folders given whole.  ``progress(done, total)`` counts
    passages embedded.  One writer at a time: the index's lock is held throughout.
    ``publish`` writes the result (the index directory; ``index.milvus_store`` for
    Milvus) and ``compute_vectors`` computes the vectors (``index.vectors.compute``;
    on Ray, ``index.ray_ingest``).  ``unchanged``: documents given again but not
    parsed (``ingest.load``'s ``Known``), carried over as the previous build has
    them; ``MustParse`` when that build cannot give them.  ``fingerprint``: what
    the parsed documents were parsed with (``Loaded.fingerprint``)."""
    if store.is_foreign(Path(out)):
        raise BuildError(f"{out} exists and is not a podcite index; choose another --index")
    with store.lock(Path(out)):
        return _build(
            Given(list(documents), list(unchanged), fingerprint, list(errors), catalog_files),
            Path(out),
            embedder,
            strict,
            progress,
            (window_s, stride_s),
            (roots, prune, replace),
            (publish, compute_vectors),
        )


@dataclass
class Given:
    """What an ingest hands a build: parsed documents, documents left unparsed,
    what the parsed ones were parsed with, errors, catalogs."""

    documents: list[Document]
    unchanged: list[Unchanged]
    fingerprint: str | None
    errors: list[DocumentError]
    catalog_files: Sequence[Path]


def _build(
    given: Given,
    out: Path,
    embedder: Embedder,
    strict: bool,
    progress: Callable[[int, int], None] | None,
    windows: tuple[float, float],
    keep: tuple[Sequence[Path], bool, bool],
    hooks: tuple[Callable[[Path, store.Stored], object], Callable[..., Vectors]],
) -> BuildReport:
    publish, compute_vectors = hooks
    t0 = time.perf_counter()
    (window_s, stride_s), (roots, prune, replace) = windows, keep
    documents, unchanged = given.documents, given.unchanged
    report = BuildReport(path=out)
    report.errors = [str(e) for e in given.errors]
    if not documents and not unchanged:
        first = f"; first error: {report.errors[0]}" if report.errors else ""
        raise BuildError("no documents to index" + first)
    model = embedder.name
    docs = {d.id: d for d in documents}
    old, warning = store.previous(out)
    before: dict[str, dict[str, Any]] = old.manifest.get("documents", {}) if old else {}
    if unchanged and (
        old is None
        or replace
        or old.model != model
        or old.token_bits is None  # a build before stored tokens: embed them again
        or not carry.knows([before.get(u.id, {}) for u in unchanged])
    ):
        raise MustParse("documents left unparsed cannot be carried over; parse them")
    issues = [i for d in documents for i in d.issues]
    issues += [i for u in unchanged for i in carry.issues_of(before[u.id], u.path)]
    report.warnings = [str(i) for i in issues if not i.note]
    report.notes = [str(i) for i in issues if i.note]
    if warning:
        report.warnings.append(warning)
    if strict and (report.errors or report.warnings):
        raise BuildError(strict_failure(report))
    if replace:
        report.added = [d.id for d in documents]
        report.removed = [d for d in before if d not in docs]
    kept = [] if replace else _carried(old, out, given, roots, prune, report, warning)
    if kept and old is not None and old.model != model:
        raise BuildError(
            f"{out} was built with the model {old.model!r}, this ingest uses {model!r}; "
            "ingest everything again with --replace, or choose another --index"
        )

    new: list[Passage] = []
    per_doc: dict[str, int] = {}
    for doc in documents:
        ps = make_passages(doc, window_s=window_s, stride_s=stride_s)
        per_doc[doc.id] = len(ps)
        new.extend(ps)
    keys = [passage_key(model, p, docs[p.document_id]) for p in new]
    shas = {said_key(d.sha256, d.title) for d in documents if d.kind == "transcript"}
    vecs = compute_vectors(new, docs, keys, embedder, previous(old, model, shas), progress)
    report.embedded, report.reused = vecs.embedded, vecs.reused

    rows = again = copied = np.zeros(0, dtype=np.intp)
    if kept and old is not None:  # kept documents: their rows as the verified build has them
        rows = carry.rows_of(old.columns, kept)
        affected = _affected(docs, report, before, [before[d] for d in kept])
        again, copied = carry.split(old.columns, rows, affected)
    # Wiki citations checked against transcripts of the same episode: the new
    # documents, and the kept rows of the episodes they (or removals) touch.
    checked_in = [*new, *(carry.unchecked(old.passages[int(r)]) for r in again)] if old else new
    starts, counts = (old.columns.sentence_start, old.columns.sentences) if old else (None, None)
    sent_again = [old.sentence_vectors_of(int(r)) for r in again] if old else []
    checked, _ = citecheck.verify(
        checked_in, [v.astype(np.float32) for v in [*vecs.sentences, *sent_again]]
    )
    if documents and not new and not unchanged:
        raise BuildError("the documents hold no indexable text")
    olds = [old.vectors[again], old.vectors[copied]] if old is not None else []
    vectors = np.concatenate([vecs.passages, *olds], dtype=np.float32)
    sent_parts = [*vecs.sentences, *sent_again]
    if old is not None and starts is not None and counts is not None and len(copied):
        # Views of the memory-mapped array, a run at a time, and the cast inside
        # the concatenation: the carried sentence vectors (177 MB for the shared
        # library) are copied once, where indexing and astype copied them thrice.
        runs = carry.sentence_runs(starts, counts, copied)
        sent_parts += [old.sentence_vectors[a:b] for a, b in runs]
    sentence_vectors = np.concatenate(sent_parts, dtype=np.float16)
    keys = [*keys, *(old.keys[int(r)] for r in (*again, *copied))] if old else keys
    tokens = None  # None: the store makes them from the passages
    if old is not None and old.tokens is not None:
        old_tokens = old.tokens
        # A keyword index of another tokenizer version loads as none
        # (keyword.load_keyword_index): its token lines are as stale, so the
        # rows carried over are tokenised again rather than copied.
        fresh = old.keyword is not None
        tokens = [" ".join(passage_tokens(p)) for p in new]
        tokens += [
            old_tokens[int(r)] if fresh else " ".join(passage_tokens(old.passages[int(r)]))
            for r in (*again, *copied)
        ]
    bits, starts = _stored_tokens(vecs, old, again, copied, embedder.dimension)
    if bits is None:
        report.notes.append(
            "token vectors not stored: documents not given now were carried over from a "
            "build made before podcite stored them, so the re-reading embeds its candidates "
            "at query time; give every document again (or --replace) to store them"
        )
    passages: Sequence[Passage] = checked
    if old is not None and len(copied):
        table = old.passages
        passages = (
            Carried(checked, table, copied)
            if isinstance(table, PassageTable)
            else [*checked, *(table[int(r)] for r in copied)]
        )
    report.reused += len(rows)
    report.documents = len(documents) + len(kept)
    report.passages = len(passages)
    report.sentences = int(sentence_vectors.shape[0])
    record = model_record(model, getattr(embedder, "model_dir", None))
    manifest = _manifest(given, old, kept, per_doc, checked, record, embedder.dimension, report)
    manifest["transcript_windows"] = {
        "window_s": window_s,
        "stride_s": stride_s,
        "model_windows": MODEL_WINDOWS,
    }
    report.seconds = time.perf_counter() - t0
    manifest["build_seconds"] = round(report.seconds, 2)
    publish(
        out,
        store.Stored(
            manifest,
            passages,
            vectors,
            sentence_vectors,
            keys,
            tokens=tokens,
            token_bits=bits,
            token_starts=starts,
        ),
    )
    return report


def _stored_tokens(
    vecs: Vectors,
    old: store.Stored | None,
    again: NDArray[np.intp],
    copied: NDArray[np.intp],
    dim: int,
) -> tuple[NDArray[np.uint8] | None, NDArray[np.int64] | None]:
    """The build's stored tokens in row order (new, checked again, copied), as
    ``token_bits.npy`` and ``token_starts.npy`` hold them; (None, None) where
    carried rows come from a build that stores none."""
    parts = list(vecs.tokens)
    if old is not None and (len(again) or len(copied)):
        if old.token_bits is None or old.token_starts is None:
            return None, None
        parts += [old.tokens_of(int(r)) for r in again]
        runs = carry.sentence_runs(old.columns.sentence_start, old.columns.sentences, copied)
        parts += [sentences_of(old.token_bits, old.token_starts, a, b - a) for a, b in runs]
    joined = concat(parts, width(dim))
    starts = np.concatenate([[0], np.cumsum(joined.counts, dtype=np.int64)]).astype(np.int64)
    return joined.bits, starts


def _affected(
    docs: dict[str, Document],
    report: BuildReport,
    before: dict[str, dict[str, Any]],
    kept: list[dict[str, Any]],
) -> set[str] | None:
    """Episodes whose kept rows must be checked again: those of documents added,
    changed or removed now (None: every episode, for a previous build that kept
    no verdict counts per document)."""
    if not carry.knows(kept):
        return None
    episodes = {d.episode.id for d in docs.values() if d.episode}
    for doc_id in (*report.updated, *report.removed):
        episodes.add(str(before.get(doc_id, {}).get("episode")))
    return episodes


def _manifest(
    given: Given,
    old: store.Stored | None,
    kept: list[str],
    per_doc: dict[str, int],
    checked: Sequence[Passage],
    record: dict[str, Any],
    dimension: int,
    report: BuildReport,
) -> dict[str, Any]:
    before: dict[str, dict[str, Any]] = old.manifest["documents"] if old else {}
    paths = {u.id: u.path for u in given.unchanged}
    counted = carry.verdicts(checked)
    entries: dict[str, dict[str, Any]] = {
        d.id: {
            "path": d.path,
            "sha256": d.sha256,
            "kind": d.kind,
            "title": d.title,
            "episode": d.episode.id if d.episode else None,
            "passages": per_doc[d.id],
            "file": str(Path(d.path).resolve()),
            "parsed_with": given.fingerprint,
            "issues": carry.issues_entry(d),
        }
        for d in given.documents
    }
    for d in kept:
        entry = dict(before[d])
        if d in paths:  # given again, unchanged: where it is now
            entry["path"], entry["file"] = paths[d], str(Path(paths[d]).resolve())
        entry.setdefault("issues", [])
        entries[d] = entry
    rechecked = {p.document_id for p in checked}
    for d, entry in entries.items():
        if d in rechecked or "citations" not in entry:
            entry["citations"] = dict(counted.get(d, {}))
    citations: Counter[str] = Counter()
    for entry in entries.values():
        citations.update(entry["citations"])
    old_catalogs = old.manifest.get("catalogs", []) if kept and old is not None else []
    catalog_files = given.catalog_files
    return {
        "format_version": store.FORMAT_VERSION,
        "model": record,
        "dimension": dimension,
        "similarity": "cosine (inner product of L2-normalised vectors)",
        "counts": {
            "documents": report.documents,
            "passages": report.passages,
            "sentences": report.sentences,
        },
        "documents": entries,
        # index/library.py: the page's episode list (kept documents' entries carried over)
        "episodes": episode_entries(
            given.documents, kept_entries(old.manifest if old else None, kept)
        ),
        "catalogs": list(dict.fromkeys([*old_catalogs, *(str(p) for p in catalog_files)])),
        "citations_checked": {v: citations[v] for v in carry.VERDICTS if citations[v]},
        "warnings": report.warnings,
        "notes": report.notes,
        "errors": report.errors,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


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
    given: Given,
    roots: Sequence[Path],
    prune: bool,
    report: BuildReport,
    warning: str | None,
) -> list[str]:
    """Sort the previous build's documents into updated/kept/removed; the ids to
    carry over (documents given but left unparsed, and those not given)."""
    parsed = given.documents
    unparsed = [u.id for u in given.unchanged]
    if old is None:
        if warning and not _all_given(out, {d.id for d in parsed} | set(unparsed)):
            raise BuildError(
                f"{warning}; its documents cannot be carried over: ingest everything "
                "again with --replace"
            )
        report.added = [d.id for d in parsed]
        return []
    s = carry.sort(old.manifest.get("documents", {}), parsed, unparsed, roots, prune)
    report.added, report.updated, report.removed = s.added, s.updated, s.removed
    report.kept = [*s.same, *s.carried]
    return s.carried


def _all_given(out: Path, given: set[str]) -> bool:
    """Whether a broken previous build's documents (by its manifest) are all given now."""
    try:
        return set(store.read_manifest(out).get("documents", {})) <= set(given)
    except PodciteError:
        return False
