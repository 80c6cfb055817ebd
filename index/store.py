"""The index directory: its one owner.  Written aside, verified, published,
pruned and loaded here, and nowhere else.

    manifest.json        format version, model, dimension, counts, documents
                         (path, hash, kind, title, episode, passages), build
                         time, warnings, checksums of every file below
    passages.jsonl       one passage a line, in vector order (``passage_to_dict``)
    vectors.npy          float32 (passages, dim), L2-normalised
    sentences.npy        float16 (sentences, dim), L2-normalised, passage order
    embed_keys.txt       sha1 of each passage's embedded text: the embedding cache key
    faiss.index          IndexFlatIP over vectors.npy
    bm25/                the keyword index (``KeywordIndex.save``): bm25s's files
                         data.csc.index.npy, indices.csc.index.npy,
                         indptr.csc.index.npy, vocab.index.json,
                         params.index.json, and podcite.json (tokenizer version)

The directory a user names is a symlink to one build under ``.<name>.builds/``;
a new build is written beside it as ``<stamp>-<pid>.partial``, verified,
renamed, and the symlink replaced in one atomic step.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.errors import IndexFormatError, IndexMissingError
from index.keyword import KeywordIndex, build_keyword_index, load_keyword_index
from ingest.records import Episode, Passage, Sentence, Time

if TYPE_CHECKING:
    from numpy.typing import NDArray

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
VECTORS = "vectors.npy"
SENTENCES = "sentences.npy"
KEYS = "embed_keys.txt"
FAISS = "faiss.index"
KEYWORD = "bm25"
DATA_FILES = (PASSAGES, VECTORS, SENTENCES, KEYS, FAISS)
KEEP_BUILDS = 2  # the live build and the one before it


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def builds_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.builds"


@dataclass
class Stored:
    """What an index directory holds, as loaded (or as a build computed it)."""

    manifest: dict[str, Any]
    passages: list[Passage]
    vectors: NDArray[np.float32]
    sentence_vectors: NDArray[np.float16]
    keys: list[str]
    path: Path | None = None  # the resolved build directory, once on disk
    faiss: Any = None  # None when loaded with searchable=False
    keyword: KeywordIndex | None = None

    @property
    def sentence_start(self) -> NDArray[np.int64]:
        """Row of each passage's first sentence vector."""
        counts = [len(p.sentences) for p in self.passages]
        starts = np.zeros(len(counts), dtype=np.int64)
        if counts:
            starts[1:] = np.cumsum(counts)[:-1]
        return starts

    @property
    def model(self) -> str:
        return str(self.manifest["model"]["name"])

    def sentence_vectors_of(self, i: int) -> NDArray[np.float16]:
        a = int(self.sentence_start[i])
        return self.sentence_vectors[a : a + len(self.passages[i].sentences)]


# -- passages.jsonl ----------------------------------------------------------------


def passage_to_dict(p: Passage) -> dict[str, Any]:
    return {
        "id": p.id,
        "document_id": p.document_id,
        "document_title": p.document_title,
        "kind": p.kind,
        "channel": p.channel,
        "episode": _fields_dict(p.episode),
        "section": list(p.section),
        "path": p.path,
        "links": list(p.links),
        "anchor": _time_dict(p.anchor),
        "transcribed": p.transcribed,
        "sentences": [
            {
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "time": _time_dict(s.time),
                "end_time": s.end_time,
                "links": list(s.links),
                "line": s.line,
            }
            for s in p.sentences
        ],
    }


def passage_from_dict(d: dict[str, Any]) -> Passage:
    return Passage(
        id=d["id"],
        document_id=d["document_id"],
        document_title=d["document_title"],
        kind=d["kind"],
        channel=d["channel"],
        episode=_episode_from(d["episode"]),
        section=tuple(d["section"]),
        path=d.get("path", ""),
        links=tuple(d["links"]),
        anchor=_time_from(d["anchor"]),
        transcribed=d.get("transcribed"),  # absent in indexes built before feeds
        sentences=tuple(
            Sentence(
                start=s["start"],
                end=s["end"],
                text=s["text"],
                time=_time_from(s["time"]),
                end_time=s.get("end_time"),
                links=tuple(s.get("links", ())),
                line=s.get("line", 0),
            )
            for s in d["sentences"]
        ),
    )


def _fields_dict(record: Any) -> dict[str, Any] | None:
    if record is None:
        return None
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _episode_from(d: dict[str, Any] | None) -> Episode | None:
    if d is None:
        return None
    known = {f.name for f in fields(Episode)}  # fields of a newer podcite are ignored
    return Episode(**{k: v for k, v in d.items() if k in known})


def _time_dict(t: Time | None) -> dict[str, Any] | None:
    if t is None:
        return None
    d: dict[str, Any] = {"seconds": t.seconds, "exact": t.exact}
    if t.verified is not None:
        d["verified"] = t.verified
        d["said_at"] = t.said_at
    return d


def _time_from(d: dict[str, Any] | None) -> Time | None:
    if d is None:
        return None
    return Time(d["seconds"], d["exact"], d.get("verified"), d.get("said_at"))


# -- reading -----------------------------------------------------------------------


def read_manifest(path: Path) -> dict[str, Any]:
    target = path / MANIFEST
    if not path.exists():
        raise IndexMissingError(f"no index at {path}: run `podcite ingest` first")
    if not target.is_file():
        raise IndexFormatError(f"{path}: not an index (no {MANIFEST})")
    try:
        manifest: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"{target}: unreadable manifest: {exc}") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexFormatError(
            f"{path}: index format {manifest.get('format_version')!r}, this podcite reads "
            f"{FORMAT_VERSION}; rebuild it with `podcite ingest`"
        )
    return manifest


def load(path: Path, verify: bool = True, searchable: bool = True) -> Stored:
    """Open an index; with ``verify``, every file's checksum must match the manifest.

    ``searchable=False`` skips the FAISS file (``Stored.faiss`` is None): what a
    rebuild needs to reuse vectors.  It also leaves OpenMP alone, see below."""
    if searchable:
        import faiss

        # Queries come one at a time: OpenMP threads only add their wake-up cost
        # (IndexFlatIP over 13,791 vectors: 15 ms p50 with 2 threads, 1 ms with 1;
        # docs/retrieval.md).  faiss and torch share one OpenMP runtime, so this
        # also makes torch single-threaded: right for one query at a time, half
        # speed for embedding a corpus, which is why a rebuild loads its
        # previous index with searchable=False.
        faiss.omp_set_num_threads(1)
    path = Path(path)
    manifest = read_manifest(path)
    path = path.resolve()  # hold on to this build even if a newer one is swapped in
    if verify:
        _verify_checksums(path, manifest)
    try:
        with (path / PASSAGES).open(encoding="utf-8") as fh:
            passages = [passage_from_dict(json.loads(line)) for line in fh if line.strip()]
        vectors = np.load(path / VECTORS)
        sentence_vectors = np.load(path / SENTENCES)
        keys = (path / KEYS).read_text(encoding="utf-8").split()
        fidx = faiss.read_index(str(path / FAISS)) if searchable else None
        keyword = load_keyword_index(path / KEYWORD)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise IndexFormatError(f"{path}: unreadable index: {exc}") from exc
    n = len(passages)
    if fidx is not None and fidx.ntotal != n:
        raise IndexFormatError(f"{path}: the FAISS index does not match the passages")
    if not (vectors.shape[0] == n == len(keys) == manifest["counts"]["passages"]):
        raise IndexFormatError(f"{path}: passage, vector and manifest counts disagree")
    if sentence_vectors.shape[0] != sum(len(p.sentences) for p in passages):
        raise IndexFormatError(f"{path}: sentence vectors do not match the passages")
    return Stored(manifest, passages, vectors, sentence_vectors, keys, path, fidx, keyword)


def _verify_checksums(path: Path, manifest: dict[str, Any]) -> None:
    for name, digest in manifest.get("checksums", {}).items():
        f = path / name
        if not f.is_file() or file_sha256(f) != digest:
            raise IndexFormatError(f"{f}: missing or does not match the manifest checksum")


# -- writing -----------------------------------------------------------------------


def publish(out: Path, data: Stored) -> Path:
    """Write ``data`` as a new build beside ``out``, verify it, and point ``out``
    at it in one atomic step; returns the build directory.  A failure at any
    point leaves the previous build answering and removes this one."""
    import faiss

    root = builds_dir(out)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    tmp = root / f"{stamp}-{os.getpid()}.partial"
    tmp.mkdir()
    try:
        with (tmp / PASSAGES).open("w", encoding="utf-8") as fh:
            for p in data.passages:
                fh.write(json.dumps(passage_to_dict(p), ensure_ascii=False) + "\n")
        np.save(tmp / VECTORS, data.vectors)
        np.save(tmp / SENTENCES, data.sentence_vectors)
        (tmp / KEYS).write_text("\n".join(data.keys) + "\n", encoding="utf-8")
        fidx = faiss.IndexFlatIP(data.vectors.shape[1])
        fidx.add(data.vectors)
        faiss.write_index(fidx, str(tmp / FAISS))
        (data.keyword or build_keyword_index(data.passages)).save(tmp / KEYWORD)
        # The keyword files too: a corrupt BM25 file must fail load(verify=True) like any other.
        keyword_files = sorted(f"{KEYWORD}/{f.name}" for f in (tmp / KEYWORD).iterdir())
        names = [*DATA_FILES, *keyword_files]
        manifest = {**data.manifest, "checksums": {n: file_sha256(tmp / n) for n in names}}
        # The manifest is written last: a directory without one is never an index.
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        load(tmp, verify=True, searchable=False)  # what was written reads back whole
        final = tmp.with_suffix("")
        tmp.rename(final)
        _swap(out, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root, keep=os.readlink(out) if out.is_symlink() else None)
    return final


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


def is_foreign(out: Path) -> bool:
    """A directory that exists and is not a podcite index: never written over."""
    return out.exists() and not out.is_symlink() and not (out / MANIFEST).exists()
