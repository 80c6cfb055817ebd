"""The index directory: plain files, read and validated here.

    manifest.json        format version, model, dimension, counts, per-document
                         hashes, build time, checksums of the files below
    passages.jsonl       one passage a line, in vector order
    vectors.npy          float32 (passages, dim), L2-normalised
    sentences.npy        float16 (sentences, dim), L2-normalised, passage order
    embed_keys.txt       sha1 of each passage's embedded text: the embedding cache key
    faiss.index          IndexFlatIP over vectors.npy

The directory a user names is a symlink to one build under ``.<name>.builds/``;
a new build is written beside it and the symlink replaced in one atomic step.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.embedder import Embedder
from ingest.errors import IndexFormatError, IndexMissingError
from ingest.records import Passage

if TYPE_CHECKING:
    from numpy.typing import NDArray

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
VECTORS = "vectors.npy"
SENTENCES = "sentences.npy"
KEYS = "embed_keys.txt"
FAISS = "faiss.index"
DATA_FILES = (PASSAGES, VECTORS, SENTENCES, KEYS, FAISS)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Index:
    path: Path  # the resolved build directory
    manifest: dict[str, Any]
    passages: list[Passage]
    vectors: NDArray[np.float32]
    sentence_vectors: NDArray[np.float16]
    sentence_start: NDArray[np.int64]  # passage i's sentences start at this row
    keys: list[str]
    faiss: Any
    embedder: Embedder | None = None  # encodes queries; the model the manifest names
    extras: dict[str, Any] = field(default_factory=dict)  # keyword index etc.

    @property
    def model(self) -> str:
        return str(self.manifest["model"]["name"])

    @property
    def dimension(self) -> int:
        return int(self.manifest["dimension"])

    def sentence_vectors_of(self, i: int) -> NDArray[np.float16]:
        a = int(self.sentence_start[i])
        return self.sentence_vectors[a : a + len(self.passages[i].sentences)]


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


def load(
    path: Path,
    verify: bool = True,
    embedder: Embedder | None = None,
    searchable: bool = True,
) -> Index:
    """Open an index; with ``verify``, every file's checksum must match the manifest.

    ``searchable=False`` skips the FAISS file (``Index.faiss`` is None): what a
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
        for name, digest in manifest.get("checksums", {}).items():
            f = path / name
            if not f.is_file() or file_sha256(f) != digest:
                raise IndexFormatError(f"{f}: missing or does not match the manifest checksum")
    try:
        with (path / PASSAGES).open(encoding="utf-8") as fh:
            passages = [Passage.from_dict(json.loads(line)) for line in fh if line.strip()]
        vectors = np.load(path / VECTORS)
        sentence_vectors = np.load(path / SENTENCES)
        keys = (path / KEYS).read_text(encoding="utf-8").split()
        fidx = faiss.read_index(str(path / FAISS)) if searchable else None
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise IndexFormatError(f"{path}: unreadable index: {exc}") from exc
    counts = [len(p.sentences) for p in passages]
    n = len(passages)
    if fidx is not None and fidx.ntotal != n:
        raise IndexFormatError(f"{path}: the FAISS index does not match the passages")
    if not (vectors.shape[0] == n == len(keys) == manifest["counts"]["passages"]):
        raise IndexFormatError(f"{path}: passage, vector and manifest counts disagree")
    if sentence_vectors.shape[0] != sum(counts):
        raise IndexFormatError(f"{path}: sentence vectors do not match the passages")
    starts = np.zeros(n, dtype=np.int64)
    if n:
        starts[1:] = np.cumsum(counts)[:-1]
    from index.keyword import DIRNAME, load_keyword_index

    index = Index(path, manifest, passages, vectors, sentence_vectors, starts, keys, fidx, embedder)
    index.extras["keyword"] = load_keyword_index(path / DIRNAME)
    return index
