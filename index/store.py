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

The directory a user names is a symlink to one build under ``.<name>.builds/``
(index/builds.py: the lock, names, leftovers, pruning, rollback); a new build is
written beside it as ``<stamp>-<pid>.partial``, fsynced, verified, renamed, and
the symlink replaced in one atomic step (then the folders fsynced).

The manifest carries its own checksum (``manifest_sha256``, format 2), and
every load checks it and the manifest against the data (model dimension,
counts, the document list); ``verify`` adds the files' checksums, which must
cover every file.  Format-1 manifests (older builds) have no self-checksum and
are still read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index import builds
from index.builds import builds_dir
from index.errors import BuildError, IndexFormatError, IndexMissingError
from index.keyword import KeywordIndex, build_keyword_index, load_keyword_index
from index.serial import passage_from_dict, passage_to_dict
from ingest.records import Passage

if TYPE_CHECKING:
    from numpy.typing import NDArray

FORMAT_VERSION = 2
READS = (1, 2)  # format 1: the same files, no manifest self-checksum
SELF = "manifest_sha256"
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
VECTORS = "vectors.npy"
SENTENCES = "sentences.npy"
KEYS = "embed_keys.txt"
FAISS = "faiss.index"
KEYWORD = "bm25"
DATA_FILES = (PASSAGES, VECTORS, SENTENCES, KEYS, FAISS)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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

    @cached_property
    def sentence_start(self) -> NDArray[np.int64]:
        """Row of each passage's first sentence vector.  Cached: ``sentence_vectors_of``
        asks for it once per passage, and recounting every passage each time made
        a rebuild's reuse of 32k passages quadratic (minutes of a re-ingest)."""
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


# -- reading -----------------------------------------------------------------------


def manifest_digest(manifest: dict[str, Any]) -> str:
    """The manifest's own checksum: sha256 of its canonical JSON without this field."""
    body = {k: v for k, v in manifest.items() if k != SELF}
    canon = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


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
    if not isinstance(manifest, dict) or manifest.get("format_version") not in READS:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise IndexFormatError(
            f"{path}: index format {version!r}, this podcite reads "
            f"{FORMAT_VERSION}; rebuild it with `podcite ingest`"
        )
    if manifest["format_version"] >= 2 and manifest.get(SELF) != manifest_digest(manifest):
        raise IndexFormatError(f"{target}: the manifest does not match its own checksum")
    return manifest


def check_manifest(path: Path, verify: bool = True, model: str | None = None) -> dict[str, Any]:
    """What ``podcite serve`` checks before the model loads: the manifest (its
    own checksum), the model it names and, with ``verify``, every file's checksum."""
    manifest = read_manifest(path)
    if model is not None and _model(manifest) != model:
        raise IndexFormatError(
            f"{path}: built with the model {_model(manifest)!r}, but this podcite "
            f"loads {model!r}; rebuild it with `podcite ingest --replace` or set PODCITE_MODEL_DIR"
        )
    if verify:
        _verify_checksums(path.resolve(), manifest)
    return manifest


def _model(manifest: dict[str, Any]) -> str:
    try:
        return str(manifest["model"]["name"])
    except (KeyError, TypeError):
        return "?"


def load(path: Path, verify: bool = True, searchable: bool = True) -> Stored:
    """Open an index; with ``verify``, every file's checksum must match the manifest.
    The manifest is always checked against the data (see the module docstring).

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
        # Memory-mapped, read-only: the worker processes of one server share
        # these pages (the kernel's page cache) instead of a copy each.
        vectors = np.load(path / VECTORS, mmap_mode="r")
        sentence_vectors = np.load(path / SENTENCES, mmap_mode="r")
        keys = (path / KEYS).read_text(encoding="utf-8").split()
        fidx = faiss.read_index(str(path / FAISS)) if searchable else None
        keyword = load_keyword_index(path / KEYWORD)
    except (OSError, ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
        raise IndexFormatError(f"{path}: unreadable index: {exc}") from exc
    stored = Stored(manifest, passages, vectors, sentence_vectors, keys, path, fidx, keyword)
    _consistent(stored)
    return stored


def _consistent(s: Stored) -> None:
    """The manifest against the data: dimension, counts, document list."""
    path, m, n = s.path, s.manifest, len(s.passages)
    try:
        dim, counts, docs = int(m["dimension"]), m["counts"], m["documents"]
        per_doc = {d: int(info["passages"]) for d, info in docs.items()}
        m["model"]["name"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise IndexFormatError(f"{path}: the manifest lacks or garbles {exc}") from None
    if s.vectors.ndim != 2 or s.vectors.shape[1] != dim or s.sentence_vectors.ndim != 2:
        raise IndexFormatError(f"{path}: vectors are not {dim}-dimensional as the manifest says")
    if s.sentence_vectors.shape[1] != dim or (s.faiss is not None and s.faiss.d != dim):
        raise IndexFormatError(f"{path}: vectors are not {dim}-dimensional as the manifest says")
    if s.faiss is not None and s.faiss.ntotal != n:
        raise IndexFormatError(f"{path}: the FAISS index does not match the passages")
    if not (s.vectors.shape[0] == n == len(s.keys) == counts.get("passages")):
        raise IndexFormatError(f"{path}: passage, vector and manifest counts disagree")
    if s.sentence_vectors.shape[0] != sum(len(p.sentences) for p in s.passages):
        raise IndexFormatError(f"{path}: sentence vectors do not match the passages")
    if counts.get("sentences") != s.sentence_vectors.shape[0]:
        raise IndexFormatError(f"{path}: sentence and manifest counts disagree")
    if counts.get("documents") != len(docs) or Counter(
        p.document_id for p in s.passages
    ) != Counter({d: c for d, c in per_doc.items() if c}):
        raise IndexFormatError(f"{path}: the manifest's document list does not match the passages")
    if s.keyword is not None and s.keyword.size != n:
        raise IndexFormatError(f"{path}: the keyword index does not match the passages")


def _verify_checksums(path: Path, manifest: dict[str, Any]) -> None:
    sums = manifest.get("checksums")
    if not isinstance(sums, dict):
        raise IndexFormatError(f"{path}: the manifest has no checksums")
    on_disk = {*DATA_FILES, *(f"{KEYWORD}/{f.name}" for f in _files(path / KEYWORD))}
    if not on_disk <= set(sums):
        missing = sorted(on_disk - set(sums))[0]
        raise IndexFormatError(f"{path / missing}: not covered by the manifest's checksums")
    for name, digest in sums.items():
        f = path / name
        if not f.is_file() or file_sha256(f) != digest:
            raise IndexFormatError(f"{f}: missing or does not match the manifest checksum")


def _files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file()) if folder.is_dir() else []


def previous(out: Path) -> tuple[Stored | None, str | None]:
    """The served build, verified, for a rebuild to reuse (no FAISS); with a
    warning instead when it fails verification (then nothing is reused)."""
    try:
        return load(out, verify=True, searchable=False), None
    except IndexMissingError:
        return None, None
    except IndexFormatError as exc:
        if not out.exists():
            return None, None
        return None, f"the previous build fails verification, nothing reused from it: {exc}"


# -- writing -----------------------------------------------------------------------


@contextmanager
def lock(out: Path) -> Iterator[None]:
    """Hold the one-writer lock of this index (index/builds.py); on taking it,
    the leftovers of dead builds are removed, so kills in a row pile nothing up."""
    with builds.lock(builds_dir(out)):
        builds.clean(out)
        yield


def needed_bytes(data: Stored) -> int:
    """About what a build takes on disk: vectors twice (npy and FAISS), the
    sentence vectors, the passages as JSON (~3x their text) and the keyword index."""
    text = sum(len(s.text) for p in data.passages for s in p.sentences)
    return int(2 * data.vectors.nbytes + data.sentence_vectors.nbytes + 5 * text + (1 << 20))


def publish(out: Path, data: Stored, progress: Callable[[int, int], None] | None = None) -> Path:
    """Write ``data`` as a new build beside ``out``, verify it, and point ``out``
    at it in one atomic step; returns the build directory.  A failure at any
    point leaves the previous build answering and removes this one.
    ``progress(done, total)`` counts the steps (files written, verified, published)."""
    step = _stepper(progress, WRITE_STEPS)
    root = builds_dir(out)
    with lock(out):
        need = needed_bytes(data)
        free = shutil.disk_usage(root).free
        if free < need:
            raise builds.write_error(root, OSError(28, "No space left on device"), need)
        tmp = root / f"{builds.new_name()}.partial"
        final = tmp.with_suffix("")
        try:
            tmp.mkdir()
            _write(tmp, data, step)
            load(tmp, verify=True, searchable=False)  # what was written reads back whole
            step()
            tmp.rename(final)
            builds.fsync_dir(root)
            live = builds.served(out)
            if live is not None:
                builds.mark_published(live)  # served, so published: a rollback target
            _swap(out, final)
            builds.mark_published(final)
            step()
        except BaseException as exc:
            if builds.served(out) != final.resolve():
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.rmtree(final, ignore_errors=True)
            if isinstance(exc, OSError):
                raise builds.write_error(root, exc, need) from None
            if isinstance(exc, RuntimeError) and "write" in str(exc).lower():
                raise BuildError(f"cannot write in {root}: {exc}") from None  # FAISS's I/O
            raise
        builds.prune(out)
    return final


# publish's steps, for its progress: passages, vectors, FAISS, keyword index,
# checksums and manifest, read back and verified, published.
WRITE_STEPS = 7


def _stepper(progress: Callable[[int, int], None] | None, total: int) -> Callable[[], None]:
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    return step


def _write(tmp: Path, data: Stored, step: Callable[[], None]) -> None:
    import faiss

    with (tmp / PASSAGES).open("w", encoding="utf-8") as fh:
        for p in data.passages:
            fh.write(json.dumps(passage_to_dict(p), ensure_ascii=False) + "\n")
    step()
    np.save(tmp / VECTORS, data.vectors)
    np.save(tmp / SENTENCES, data.sentence_vectors)
    (tmp / KEYS).write_text("\n".join(data.keys) + "\n", encoding="utf-8")
    step()
    fidx = faiss.IndexFlatIP(data.vectors.shape[1])
    fidx.add(data.vectors)
    faiss.write_index(fidx, str(tmp / FAISS))
    step()
    (data.keyword or build_keyword_index(data.passages)).save(tmp / KEYWORD)
    step()
    # The keyword files too: a corrupt BM25 file must fail load(verify=True) like any other.
    names = [*DATA_FILES, *(f"{KEYWORD}/{f.name}" for f in _files(tmp / KEYWORD))]
    manifest = {**data.manifest, "format_version": FORMAT_VERSION}
    manifest["checksums"] = {n: file_sha256(tmp / n) for n in names}
    manifest[SELF] = manifest_digest(manifest)
    builds.fsync_tree(tmp)
    # The manifest is written last: a directory without one is never an index.
    with (tmp / MANIFEST).open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(manifest, indent=1))
        fh.flush()
        os.fsync(fh.fileno())
    builds.fsync_dir(tmp)
    step()


def _swap(out: Path, build_dir: Path) -> None:
    """Point ``out`` at ``build_dir`` in one step (rename of a symlink over a
    symlink), then fsync the folder so the new pointer survives a power cut."""
    target = os.path.relpath(build_dir, out.parent)
    if out.exists() and not out.is_symlink():
        # A plain directory from an older layout: move it aside once.
        out.rename(builds_dir(out) / f"legacy-{os.getpid()}")
    link = out.parent / f".{out.name}.link-{os.getpid()}"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(target, link)
    os.replace(link, out)
    builds.fsync_dir(out.parent)


def rollback(out: Path) -> Path:
    """Point ``out`` back at the build before the served one, verified first."""
    with lock(out):
        target = builds.rollback_target(out)
        if target is None:
            raise BuildError(f"{out}: no previous build to roll back to")
        load(target, verify=True, searchable=False)
        live = builds.served(out)
        if live is not None:
            builds.mark_published(live)
        _swap(out, target)
    return target


def is_foreign(out: Path) -> bool:
    """A directory that exists and is not a podcite index: never written over."""
    return out.exists() and not out.is_symlink() and not (out / MANIFEST).exists()
