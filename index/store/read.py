"""Reading an index directory and checking it: the layout's names, ``Stored``,
``load`` and its checks, and the build a rebuild may reuse (``previous``).
The format, and what each check guarantees: index/store/__init__.py."""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from index import ann
from index.errors import IndexFormatError, IndexMissingError
from index.keyword import (
    KeywordIndex,
    load_keyword_index,
)
from index.rows import (
    OFFSETS,
    ROWS,
    TABLES,
    Carried,
    Columns,
    PassageTable,
    columns_of,
)
from index.rows import load_columns as _load_columns
from index.serial import passage_from_json
from index.tokens import TokenBits, sentences_of
from index.tokens import width as token_width
from ingest.records import Passage

if TYPE_CHECKING:
    from numpy.typing import NDArray

FORMAT_VERSION = 3
READS = (1, 2, 3)  # 1: no manifest self-checksum; 1-2: no offsets, rows, sizes
SELF = "manifest_sha256"
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
VECTORS = "vectors.npy"
SENTENCES = "sentences.npy"
KEYS = "embed_keys.txt"
TOKENS = "tokens.txt"
SIGN_BITS = "token_bits.npy"
SIGN_STARTS = "token_starts.npy"
ANN = "ann.faiss"
KEYWORD = "bm25"
LEGACY_FAISS = "faiss.index"  # formats 1-2: an IndexFlatIP, no longer read
DATA_FILES = (PASSAGES, OFFSETS, ROWS, TABLES, VECTORS, SENTENCES, KEYS)
LEGACY_FILES = (PASSAGES, VECTORS, SENTENCES, KEYS, LEGACY_FAISS)
FULL_CHECK_BYTES = 1 << 30  # verify=True hashes every file of an index up to this size
SMALL_FILE = 64 << 20  # ... and past it, every file up to this size
Verify = bool | Literal["full"]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)  # releases the GIL: files hash in parallel threads
    return h.hexdigest()


@dataclass
class Stored:
    """What an index directory holds, as loaded (or as a build computed it).
    Loaded, ``passages`` is a ``PassageTable`` (read on demand) and the arrays
    are memory-mapped; built, they are in memory."""

    manifest: dict[str, Any]
    passages: Sequence[Passage]
    vectors: NDArray[np.float32]
    sentence_vectors: NDArray[np.float16]
    keys: Sequence[str]
    path: Path | None = None  # the resolved build directory, once on disk
    faiss: Any = None  # the HNSW graph when there is one (None: exact search)
    keyword: KeywordIndex | None = None
    tokens: Sequence[str] | None = None  # tokens.txt's lines, where the build has one
    token_bits: NDArray[np.uint8] | None = None  # token_bits.npy, where the build has one
    token_starts: NDArray[np.int64] | None = None  # token_starts.npy, with it
    columns: Columns = field(init=False, repr=False)

    def __post_init__(self) -> None:
        table = self.passages
        if isinstance(table, PassageTable | Carried):
            self.columns = table.columns
        else:
            self.columns = columns_of(table)

    @property
    def sentence_start(self) -> NDArray[np.int64]:
        """Row of each passage's first sentence vector."""
        return self.columns.sentence_start

    @property
    def model(self) -> str:
        return str(self.manifest["model"]["name"])

    def sentence_vectors_of(self, i: int) -> NDArray[np.float16]:
        a = int(self.sentence_start[i])
        return self.sentence_vectors[a : a + int(self.columns.sentences[i])]

    def tokens_of(self, i: int) -> TokenBits:
        """Passage ``i``'s stored tokens, a sentence after another (the build
        has them: ``token_bits`` is not None)."""
        if self.token_bits is None or self.token_starts is None:
            raise ValueError("tokens_of: this build stores no tokens")
        first, count = int(self.sentence_start[i]), int(self.columns.sentences[i])
        return sentences_of(self.token_bits, self.token_starts, first, count)


class _Keys(Sequence[str]):
    """A file of one line a row (embed_keys.txt, tokens.txt), read when first
    used (only a rebuild uses them)."""

    def __init__(self, path: Path, count: int) -> None:
        self._path, self._count = path, count
        self._keys: list[str] | None = None

    def _all(self) -> list[str]:
        if self._keys is None:
            keys = self._path.read_text(encoding="utf-8").split("\n")
            if keys and keys[-1] == "":  # the last line's newline
                keys.pop()
            if len(keys) != self._count:
                raise IndexFormatError(f"{self._path}: {len(keys)} lines for {self._count} rows")
            self._keys = keys
        return self._keys

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: Any) -> Any:
        return self._all()[i]


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


def check_manifest(path: Path, verify: Verify = True, model: str | None = None) -> dict[str, Any]:
    """What ``podcite serve`` checks before the model loads: the manifest (its
    own checksum), the model it names and, with ``verify``, the files (see the
    module docstring for how much)."""
    manifest = read_manifest(path)
    _check_model(path, manifest, model)
    _verify_files(path.resolve(), manifest, verify)
    return manifest


def _check_model(path: Path, manifest: dict[str, Any], model: str | None) -> None:
    if model is not None and _model(manifest) != model:
        raise IndexFormatError(
            f"{path}: built with the model {_model(manifest)!r}, but this podcite "
            f"loads {model!r}; rebuild it with `podcite ingest --replace` or set PODCITE_MODEL_DIR"
        )


def _model(manifest: dict[str, Any]) -> str:
    try:
        return str(manifest["model"]["name"])
    except (KeyError, TypeError):
        return "?"


def load(
    path: Path,
    verify: Verify = True,
    searchable: bool = True,
    graph: bool = True,
    model: str | None = None,
) -> Stored:
    """Open an index (``verify``: see the module docstring), built with
    ``model`` when one is named.  The manifest is always checked against the data.

    ``searchable=False`` skips the HNSW graph (``Stored.faiss`` is None) and
    leaves OpenMP alone, see below: what a rebuild needs to reuse vectors.
    ``graph=False`` skips the graph too (PODCITE_ANN=flat)."""
    if searchable:
        import faiss

        # Queries come one at a time: OpenMP threads only add their wake-up cost
        # (IndexFlatIP over 13,791 vectors: 15 ms p50 with 2 threads, 1 ms with 1;
        # docs/retrieval.md).  faiss and torch share one OpenMP runtime, so this
        # also makes torch single-threaded: right for one query at a time, half
        # speed for embedding a corpus, which is why a rebuild loads its
        # previous index with searchable=False.
        faiss.omp_set_num_threads(1)
        # NumPy's OpenBLAS likewise: its threads spin after each small product
        # (the re-reading's, the candidates' cosines), which doubled the CPU
        # time of a search on 2 cores (10.2 ms for 5.5 ms of wall time; 5.1
        # with one thread) and took it from concurrent searches.
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, user_api="blas")
    path = Path(path)
    manifest = read_manifest(path)  # once: at 10^6 passages it is ~17 MB of JSON
    _check_model(path, manifest, model)
    path = path.resolve()  # hold on to this build even if a newer one is swapped in
    _verify_files(path, manifest, verify)
    try:
        if manifest["format_version"] < 3:
            stored = _load_legacy(path, manifest)
        else:
            n = int(manifest["counts"]["passages"])
            offsets = _mapped(path / OFFSETS)
            table = PassageTable(path / PASSAGES, offsets, _load_columns(path))
            stored = Stored(
                manifest,
                table,
                _mapped(path / VECTORS, random=True),
                _mapped(path / SENTENCES, random=True),
                _Keys(path / KEYS, n),
                path,
                ann.read(path / ANN) if searchable and graph and (path / ANN).is_file() else None,
                load_keyword_index(path / KEYWORD),
                _Keys(path / TOKENS, n) if (path / TOKENS).is_file() else None,
            )
            if (path / SIGN_BITS).is_file() or (path / SIGN_STARTS).is_file():
                stored.token_bits = _mapped(path / SIGN_BITS, random=True)
                stored.token_starts = _mapped(path / SIGN_STARTS)
            if offsets.ndim != 1 or int(offsets[-1]) != (path / PASSAGES).stat().st_size:
                raise IndexFormatError(f"{path}: {OFFSETS} does not match {PASSAGES}")
    except (OSError, ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
        raise IndexFormatError(f"{path}: unreadable index: {exc}") from exc
    _consistent(stored)
    return stored


def _mapped(f: Path, random: bool = False) -> NDArray[Any]:
    """A read-only memory-mapped .npy as a plain ndarray: np.memmap's own
    slicing costs ~6 us a call in Python, ~2 ms a query at 32k passages.
    ``random``: rows are read at random (a search's candidates), so the kernel
    should not read ahead (docs/benchmarks.md: readahead filled memory with
    pages no search asked for)."""
    mapped = np.load(f, mmap_mode="r")
    if random and isinstance(mapped, np.memmap) and mapped.size:
        mapped._mmap.madvise(mmap.MADV_RANDOM)  # type: ignore[attr-defined]
    out: NDArray[Any] = mapped.view(np.ndarray)
    return out


def _load_legacy(path: Path, manifest: dict[str, Any]) -> Stored:
    """Formats 1-2: every passage parsed, vectors in memory (small indexes only)."""
    with (path / PASSAGES).open(encoding="utf-8") as fh:
        passages = [passage_from_json(line) for line in fh if line.strip()]
    return Stored(
        manifest,
        passages,
        np.load(path / VECTORS),
        np.load(path / SENTENCES),
        (path / KEYS).read_text(encoding="utf-8").split(),
        path,
        None,
        load_keyword_index(path / KEYWORD),
    )


def _consistent(s: Stored) -> None:
    """The manifest against the data: dimension, counts, document list."""
    path, m, n, cols = s.path, s.manifest, len(s.passages), s.columns
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
        raise IndexFormatError(f"{path}: the HNSW graph does not match the passages")
    if not (s.vectors.shape[0] == n == len(s.keys) == len(cols) == counts.get("passages")):
        raise IndexFormatError(f"{path}: passage, vector and manifest counts disagree")
    if s.sentence_vectors.shape[0] != int(cols.sentences.sum()):
        raise IndexFormatError(f"{path}: sentence vectors do not match the passages")
    if counts.get("sentences") != s.sentence_vectors.shape[0]:
        raise IndexFormatError(f"{path}: sentence and manifest counts disagree")
    if counts.get("documents") != len(docs) or cols.document_counts() != {
        d: c for d, c in per_doc.items() if c
    }:
        raise IndexFormatError(f"{path}: the manifest's document list does not match the passages")
    if s.keyword is not None and s.keyword.size != n:
        raise IndexFormatError(f"{path}: the keyword index does not match the passages")
    if s.token_bits is not None or s.token_starts is not None:
        bits, starts = s.token_bits, s.token_starts
        if (
            bits is None
            or starts is None
            or bits.ndim != 2
            or bits.shape[1] != token_width(dim)
            or starts.shape != (s.sentence_vectors.shape[0] + 1,)
            or int(starts[0]) != 0
            or int(starts[-1]) != bits.shape[0]
        ):
            raise IndexFormatError(f"{path}: the stored tokens do not match the sentences")


def _data_files(path: Path, manifest: dict[str, Any]) -> list[str]:
    names = list(DATA_FILES if manifest["format_version"] >= 3 else LEGACY_FILES)
    names += [f for f in (ANN, TOKENS, SIGN_BITS, SIGN_STARTS) if (path / f).is_file()]
    return [*names, *(f"{KEYWORD}/{f.name}" for f in files_of(path / KEYWORD))]


def _verify_files(path: Path, manifest: dict[str, Any], verify: Verify) -> None:
    """Sizes of every file (format 3), and checksums as ``verify`` says."""
    if not verify:
        return
    sums, sizes = manifest.get("checksums"), manifest.get("sizes")
    if not isinstance(sums, dict):
        raise IndexFormatError(f"{path}: the manifest has no checksums")
    on_disk = _data_files(path, manifest)
    if not set(on_disk) <= set(sums):
        missing = sorted(set(on_disk) - set(sums))[0]
        raise IndexFormatError(f"{path / missing}: not covered by the manifest's checksums")
    if isinstance(sizes, dict):  # format 3
        for name in sums:
            f = path / name
            if not f.is_file() or f.stat().st_size != sizes.get(name):
                raise IndexFormatError(f"{f}: missing or not the size the manifest records")
    size: dict[str, int] = sizes if isinstance(sizes, dict) else {}
    hash_all = verify == "full" or not size or sum(size.values()) <= FULL_CHECK_BYTES
    names = [n for n in sums if hash_all or size[n] <= SMALL_FILE]
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        digests = dict(zip(names, pool.map(lambda n: _sha_or_none(path / n), names), strict=True))
    for name in names:
        if digests[name] != sums[name]:
            bad = path / name
            raise IndexFormatError(f"{bad}: missing or does not match the manifest checksum")


def _sha_or_none(f: Path) -> str | None:
    return file_sha256(f) if f.is_file() else None


def files_of(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file()) if folder.is_dir() else []


def previous(out: Path) -> tuple[Stored | None, str | None]:
    """The served build, verified, for a rebuild to reuse (no graph); with a
    warning instead when it fails verification (then nothing is reused)."""
    try:
        return load(out, verify="full", searchable=False), None
    except IndexMissingError:
        return None, None
    except IndexFormatError as exc:
        if not out.exists():
            return None, None
        return None, f"the previous build fails verification, nothing reused from it: {exc}"
