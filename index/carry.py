"""What a rebuild carries over from the build it replaces, without parsing it.

A rebuild that changes one document of a thousand should cost about that one
document (docs/benchmarks.md, "Ingest").  The rows of
every other document are carried as the previous build stored them: their
lines of passages.jsonl byte for byte (``index.rows.Carried``), their vectors,
keys and keyword tokens by row.  Only rows whose citation verdicts may change
are read as passages and checked again: the wiki and transcript rows of an
episode whose wiki page or transcript was added, changed or removed (the check
aligns a page with its episode's transcript, nothing else).

The manifest keeps, per document, what a later rebuild needs to report the
document without parsing it: its parse problems (re-spelled with the file's
current path) and its citation verdict counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ingest.records import ParseIssue, Passage, Time

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from index.rows import Columns
    from ingest.records import Document

VERDICTS = ("confirmed", "corrected", "unverified")


def rows_of(columns: Columns, documents: Iterable[str]) -> NDArray[np.intp]:
    """The rows of ``documents`` (ids), in row order."""
    codes = {d: i for i, d in enumerate(columns.documents)}
    wanted = np.array([codes[d] for d in documents if d in codes], dtype=np.int64)
    return np.flatnonzero(np.isin(columns.document, wanted))


def split(
    columns: Columns, rows: NDArray[np.intp], episodes: set[str] | None
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """``rows`` cut into those to check again (their episode is in ``episodes``;
    all of them when ``episodes`` is None) and those to copy as they are."""
    if episodes is None:
        return rows, rows[:0]
    codes = [i for i, e in enumerate(columns.episodes) if e in episodes]
    again = np.isin(columns.episode[rows], np.array(codes, dtype=np.int64))
    return rows[again], rows[~again]


def sentence_rows(
    starts: NDArray[np.int64], counts: NDArray[np.int32], rows: NDArray[np.intp]
) -> NDArray[np.intp]:
    """The sentence-vector rows of passage ``rows``, in order (each passage's
    ``counts[r]`` rows from ``starts[r]``)."""
    n = counts[rows].astype(np.int64)
    if not n.sum():
        return np.zeros(0, dtype=np.intp)
    first = np.repeat(starts[rows] - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
    out: NDArray[np.intp] = (first + np.arange(int(n.sum()))).astype(np.intp)
    return out


def sentence_runs(
    starts: NDArray[np.int64], counts: NDArray[np.int32], rows: NDArray[np.intp]
) -> list[tuple[int, int]]:
    """``sentence_rows`` as contiguous ``[a, b)`` runs, in order.  Carried rows
    keep their old order, so they make a few long runs, and slices of a
    memory-mapped array are views: the build copies them once, not twice."""
    if not len(rows):
        return []
    a = starts[rows].astype(np.int64)
    b = a + counts[rows]
    breaks = np.flatnonzero(a[1:] != b[:-1]) + 1  # a passage not starting where the last ended
    firsts = np.concatenate([[0], breaks])
    lasts = np.concatenate([breaks - 1, [len(rows) - 1]])
    return [(int(a[i]), int(b[j])) for i, j in zip(firsts, lasts, strict=True) if b[j] > a[i]]


def unchecked(p: Passage) -> Passage:
    """``p`` with its citation verdicts removed, to be checked again."""
    if not any(s.time is not None and s.time.verified for s in p.sentences):
        return p
    sentences = tuple(
        replace(s, time=Time(s.time.seconds, s.time.exact))
        if s.time is not None and s.time.verified
        else s
        for s in p.sentences
    )
    anchor = p.anchor
    if anchor is not None and anchor.verified:
        anchor = Time(anchor.seconds, anchor.exact)
    return replace(p, sentences=sentences, anchor=anchor)


def verdicts(passages: Iterable[Passage]) -> dict[str, Counter[str]]:
    """Per document, how many of its citations got each verdict."""
    out: dict[str, Counter[str]] = {}
    for p in passages:
        for s in p.sentences:
            if s.time is not None and s.time.verified:
                out.setdefault(p.document_id, Counter())[s.time.verified] += 1
    return out


def issues_entry(doc: Document) -> list[list[Any]]:
    """A document's parse problems as the manifest keeps them: [line, message, note]."""
    return [[i.line, i.message, i.note] for i in doc.issues]


def issues_of(entry: dict[str, Any], path: str) -> list[ParseIssue]:
    """The parse problems a manifest entry kept, spelled with ``path``."""
    kept = entry["issues"]
    return [ParseIssue(path, int(line), str(msg), bool(note)) for line, msg, note in kept]


def knows(entries: Sequence[dict[str, Any]]) -> bool:
    """Whether these manifest entries keep what a carried document needs
    (builds before this module kept neither problems nor verdict counts)."""
    return all("issues" in e and "citations" in e for e in entries)


@dataclass
class Sorting:
    """The previous build's documents as a rebuild finds them."""

    added: list[str] = field(default_factory=list)  # parsed now, new
    updated: list[str] = field(default_factory=list)  # parsed now, their file changed
    same: list[str] = field(default_factory=list)  # parsed now, their file unchanged
    removed: list[str] = field(default_factory=list)  # gone, and dropped
    carried: list[str] = field(default_factory=list)  # kept from the previous build


def sort(
    before: dict[str, dict[str, Any]],
    parsed: Sequence[Document],
    unparsed: Sequence[str],
    roots: Sequence[Path],
    prune: bool,
) -> Sorting:
    """Sort the previous build's manifest entries (``before``) against the
    documents given now: those left unparsed (known unchanged) are carried;
    one not given is dropped when its file is gone and either ``prune`` is set
    or it lay under a folder given now (a folder ingested whole), else carried."""
    out = Sorting()
    for d in parsed:
        if d.id not in before:
            out.added.append(d.id)
        elif before[d.id].get("sha256") != d.sha256:
            out.updated.append(d.id)
        else:
            out.same.append(d.id)
    out.carried = list(unparsed)
    given = {d.id for d in parsed} | set(unparsed)
    folders = [Path(r).resolve() for r in roots]
    for doc_id, info in before.items():
        if doc_id in given:
            continue
        f = Path(str(info.get("file") or info.get("path", "")))
        gone = not f.exists()
        if gone and (prune or any(f.resolve().is_relative_to(r) for r in folders)):
            out.removed.append(doc_id)
        else:
            out.carried.append(doc_id)
    return out
