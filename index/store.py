"""The index directory: its one owner.  Written aside, verified, published,
pruned and loaded here, and nowhere else.

Format 3 (what this podcite writes), every file in row order:

    manifest.json          format version, model, dimension, counts, documents
                           (path, hash, kind, title, episode, passages), build
                           time, warnings, the dense index used (``ann``), and
                           the size and SHA-256 of every file below
    passages.jsonl         one passage a line (``index.serial.passage_to_dict``)
    passages.offsets.npy   int64 (passages + 1): where each line starts; the last
                           is the file's size.  A passage is read when asked for
    rows.npy               per row: kind, document, episode, date (codes into
                           rows.json), start offset, sentence count
    rows.json              the tables rows.npy codes into: kinds, documents,
                           episodes, dates (sorted)
    vectors.npy            float32 (passages, dim), L2-normalised; memory-mapped
    sentences.npy          float16 (sentences, dim), L2-normalised, passage order;
                           memory-mapped
    token_bits.npy         uint8 (tokens, dim / 8): each sentence's content-word
                           token vectors as sign bits (index/tokens.py), the
                           sentences in sentences.npy's order; memory-mapped,
                           read by the re-reading (index/rerank.py)
    token_starts.npy       int64 (sentences + 1): where each sentence's tokens
                           start in token_bits.npy; the last is their count.
                           Both absent from builds before them, and from a
                           build that carries rows of one (the re-reading
                           then embeds its candidates again)
    embed_keys.txt         sha1 of each passage's embedded text: the embedding
                           cache key (read only by a rebuild)
    tokens.txt             each passage's keyword tokens (``index.keyword.
                           passage_tokens``), space-separated, a line a row: a
                           rebuild makes the keyword index from them without
                           parsing or tokenising the rows it carries over (read
                           only by a rebuild; builds before it have none)
    ann.faiss              only from ``index.ann.HNSW_FROM`` passages on (or with
                           PODCITE_ANN=hnsw): a FAISS HNSW graph over 8-bit
                           codes of vectors.npy (IndexHNSWSQ), read into memory
    bm25/                  the keyword index (``KeywordIndex.save``): bm25s's files
                           data.csc.index.npy, indices.csc.index.npy,
                           indptr.csc.index.npy (memory-mapped), vocab.index.json,
                           params.index.json, and podcite.json (tokenizer version)

Nothing is read whole at start-up but the manifest, rows.npy/.json and the
BM25 vocabulary (index/rows.py: no object per passage).  Formats 1 and 2 (no
offsets, rows or sizes; an IndexFlatIP in faiss.index) are still read, whole,
as before; a rebuild from one writes format 3, embedding the passages again
once for their token vectors (which those builds, and format 3 builds before
token_bits.npy, lack; index/vectors.py ``previous``).

The directory a user names is a symlink to one build under ``.<name>.builds/``
(index/builds.py: the lock, names, leftovers, pruning, rollback); a new build is
written beside it as ``<stamp>-<pid>.partial``, fsynced, verified, renamed, and
the symlink replaced in one atomic step (then the folders fsynced).

Checks (docs/reliability.md says what each guarantees): every load checks the
manifest's own checksum and the manifest against the data (dimension, counts,
document list, the size of every file).  ``verify=True`` adds the SHA-256 of
every file for an index up to ``FULL_CHECK_BYTES`` and, past that, of every
file but the large ones (vectors, sentences, passages, graph, BM25 postings),
so a million passages start in seconds; ``verify="full"`` hashes everything,
and is what ingest (the build it reuses and the one it writes), rollback and
PODCITE_VERIFY_INDEX=full use.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from index import ann, builds
from index.builds import builds_dir
from index.errors import BuildError, IndexFormatError, IndexMissingError
from index.keyword import (
    KeywordIndex,
    keyword_index_of,
    load_keyword_index,
    passage_tokens,
)
from index.rows import (
    OFFSETS,
    ROWS,
    TABLES,
    Carried,
    Columns,
    PassageTable,
    RowWriter,
    columns_of,
)
from index.rows import load_columns as _load_columns
from index.serial import passage_from_dict
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
TOKEN_BITS = "token_bits.npy"
TOKEN_STARTS = "token_starts.npy"
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
            if (path / TOKEN_BITS).is_file() or (path / TOKEN_STARTS).is_file():
                stored.token_bits = _mapped(path / TOKEN_BITS, random=True)
                stored.token_starts = _mapped(path / TOKEN_STARTS)
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
        passages = [passage_from_dict(json.loads(line)) for line in fh if line.strip()]
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
    names += [f for f in (ANN, TOKENS, TOKEN_BITS, TOKEN_STARTS) if (path / f).is_file()]
    return [*names, *(f"{KEYWORD}/{f.name}" for f in _files(path / KEYWORD))]


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


def _files(folder: Path) -> list[Path]:
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


# -- writing -----------------------------------------------------------------------


@contextmanager
def lock(out: Path) -> Iterator[None]:
    """Hold the one-writer lock of this index (index/builds.py); on taking it,
    the leftovers of dead builds are removed, so kills in a row pile nothing up."""
    with builds.lock(builds_dir(out)):
        builds.clean(out)
        yield


def needed_bytes(data: Stored) -> int:
    """About what a build takes on disk: the vectors (twice with a graph), the
    sentence vectors, the passages as JSON (~3x their text; carried rows: their
    lines' size) and the keyword index."""
    passages = data.passages
    new = passages.new if isinstance(passages, Carried) else passages
    text = 5 * sum(len(s.text) for p in new for s in p.sentences)
    if isinstance(passages, Carried):
        text += 2 * passages.line_bytes()
    bits = data.token_bits.nbytes if data.token_bits is not None else 0
    return int(2 * data.vectors.nbytes + data.sentence_vectors.nbytes + bits + text + (1 << 20))


def publish(
    out: Path,
    data: Stored,
    progress: Callable[[int, int], None] | None = None,
    ann_mode: ann.Mode = "auto",
) -> Path:
    """Write ``data`` as a new build beside ``out``, verify it, and point ``out``
    at it in one atomic step; returns the build directory.  A failure at any
    point leaves the previous build answering and removes this one.
    ``progress(done, total)`` counts the steps (files written, verified, published)."""
    bits = None
    if data.token_bits is not None and data.token_starts is not None:
        bits = TokenBits(data.token_bits, np.diff(data.token_starts).astype(np.int32))
    counts = (len(data.passages), int(data.sentence_vectors.shape[0]))
    total = None if bits is None else len(bits.bits)
    with writing(
        out, data.manifest, counts, progress, ann_mode, needed_bytes(data), total
    ) as w:
        w.keyword = data.keyword  # None: made from tokens.txt once written
        w.add(data.passages, data.vectors, data.sentence_vectors, data.keys, data.tokens, bits)
    return w.published


# publish's steps, for its progress: passages, vectors, dense index, keyword
# index, checksums and manifest, read back and verified, published.
WRITE_STEPS = 7


class Writer:
    """A build's files, written a batch at a time (``writing``)."""

    def __init__(
        self,
        tmp: Path,
        manifest: dict[str, Any],
        counts: tuple[int, int],
        token_count: int | None = None,
    ) -> None:
        """``counts``: (passages, sentences) to be written; ``token_count``: the
        stored tokens' total (None: the build stores none)."""
        from numpy.lib.format import open_memmap

        self.tmp, self.manifest = tmp, manifest
        self.keyword: KeywordIndex | None = None  # None: built from the passages written
        self.published = tmp
        dim = int(manifest["dimension"])
        self._rows = RowWriter(tmp, PASSAGES)
        self._vectors = open_memmap(tmp / VECTORS, "w+", np.float32, (counts[0], dim))
        self._sentences = open_memmap(tmp / SENTENCES, "w+", np.float16, (counts[1], dim))
        self._keys = (tmp / KEYS).open("w", encoding="utf-8")
        self._tokens = (tmp / TOKENS).open("w", encoding="utf-8")
        self._at = self._sat = self._tat = 0
        self._bits: np.memmap[Any, np.dtype[np.uint8]] | None = None
        self._starts: np.memmap[Any, np.dtype[np.int64]] | None = None
        if token_count is not None:
            shape = (token_count, token_width(dim))
            self._bits = open_memmap(tmp / TOKEN_BITS, "w+", np.uint8, shape)
            self._starts = open_memmap(tmp / TOKEN_STARTS, "w+", np.int64, (counts[1] + 1,))
            self._starts[0] = 0

    def add(
        self,
        passages: Sequence[Passage],
        vectors: NDArray[np.float32],
        sentence_vectors: NDArray[np.floating[Any]],
        keys: Sequence[str],
        tokens: Sequence[str] | None = None,
        token_bits: TokenBits | None = None,
    ) -> None:
        """Append rows: their passages, vectors, all their sentence vectors, keys,
        keyword tokens (one space-separated line a row; made from the passages
        when not given) and stored tokens (all their sentences', where the build
        stores them).  A ``Carried`` sequence's carried rows are copied as their
        build stored them, not parsed."""
        n, s = len(passages), int(sentence_vectors.shape[0])
        if not n == len(vectors) == len(keys) or (tokens is not None and len(tokens) != n):
            raise ValueError("Writer.add: passages, vectors, keys and tokens disagree")
        if (token_bits is None) != (self._bits is None) or (
            token_bits is not None and token_bits.sentences != s
        ):
            raise ValueError("Writer.add: stored tokens and sentences disagree")
        if isinstance(passages, Carried):
            held = self._rows.add(passages.new) + self._rows.copy(passages.table, passages.rows)
        else:
            held = self._rows.add(passages)
        if held != s:
            raise ValueError("Writer.add: passages and sentence vectors disagree")
        self._vectors[self._at : self._at + n] = vectors
        self._sentences[self._sat : self._sat + s] = sentence_vectors
        self._keys.write("".join(f"{k}\n" for k in keys))
        lines = tokens if tokens is not None else (" ".join(passage_tokens(p)) for p in passages)
        self._tokens.write("".join(f"{line}\n" for line in lines))
        if token_bits is not None and self._bits is not None and self._starts is not None:
            t = len(token_bits.bits)
            self._bits[self._tat : self._tat + t] = token_bits.bits
            ends = self._tat + np.cumsum(token_bits.counts, dtype=np.int64)
            self._starts[self._sat + 1 : self._sat + s + 1] = ends
            self._tat += t
        self._at, self._sat = self._at + n, self._sat + s

    def finish(self, step: Callable[[], None], ann_mode: ann.Mode) -> None:
        tmp = self.tmp
        if self._at != len(self._vectors) or self._sat != len(self._sentences):
            raise ValueError("Writer: fewer rows written than declared")
        if self._bits is not None and self._tat != len(self._bits):
            raise ValueError("Writer: fewer tokens written than declared")
        self._rows.close()
        step()
        self._vectors.flush()
        self._sentences.flush()
        stored = [TOKEN_BITS, TOKEN_STARTS] if self._bits is not None else []
        if self._bits is not None and self._starts is not None:
            self._bits.flush()
            self._starts.flush()
        self._keys.close()
        self._tokens.close()
        step()
        kind = ann.choose(self._at, ann_mode)
        if kind == "hnsw":
            ann.write(ann.build(self._vectors, threads=os.cpu_count()), tmp / ANN)
        step()
        if self.keyword is None:  # from the tokens written: nothing parsed or tokenised again
            with (tmp / TOKENS).open(encoding="utf-8") as fh:
                self.keyword = keyword_index_of([line.rstrip("\n").split(" ") for line in fh])
        self.keyword.save(tmp / KEYWORD)
        step()
        names = [*DATA_FILES, TOKENS, *stored, *([ANN] if kind == "hnsw" else [])]
        names += [f"{KEYWORD}/{f.name}" for f in _files(tmp / KEYWORD)]
        dense: dict[str, Any] = {"kind": kind}
        if kind == "hnsw":
            dense |= {"M": ann.M, "ef_construction": ann.EF_CONSTRUCTION, "codes": "SQ8"}
        manifest = {**self.manifest, "format_version": FORMAT_VERSION, "ann": dense}
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            manifest["checksums"] = dict(
                zip(names, pool.map(lambda n: file_sha256(tmp / n), names), strict=True)
            )
        manifest["sizes"] = {n: (tmp / n).stat().st_size for n in names}
        manifest[SELF] = manifest_digest(manifest)
        builds.fsync_tree(tmp)
        # The manifest is written last: a directory without one is never an index.
        with (tmp / MANIFEST).open("w", encoding="utf-8") as fh:
            fh.write(json.dumps(manifest, indent=1))
            fh.flush()
            os.fsync(fh.fileno())
        builds.fsync_dir(tmp)
        step()

    def abort(self) -> None:
        self._rows.abort()
        self._keys.close()
        self._tokens.close()


@contextmanager
def writing(
    out: Path,
    manifest: dict[str, Any],
    counts: tuple[int, int],
    progress: Callable[[int, int], None] | None = None,
    ann_mode: ann.Mode = "auto",
    need: int | None = None,
    token_count: int | None = None,
) -> Iterator[Writer]:
    """A new build of ``counts`` = (passages, sentences) rows, written through
    the ``Writer`` this yields (``Writer.add`` in batches) and, when the block
    ends, finished, read back, verified and published as ``publish`` does;
    ``Writer.published`` is then the build directory; ``token_count``: the
    stored tokens' total (None: none stored).  An exception in the
    block (or in finishing) removes the build and leaves the served one."""
    step = _stepper(progress, WRITE_STEPS)
    root = builds_dir(out)
    dim = int(manifest["dimension"])
    if need is None:  # vectors (twice with a graph), sentences, ~3 kB of JSON a passage
        need = counts[0] * (8 * dim + 3000) + counts[1] * 2 * dim + (1 << 20)
    with lock(out):
        free = shutil.disk_usage(root).free
        if free < need:
            raise builds.write_error(root, OSError(28, "No space left on device"), need)
        tmp = root / f"{builds.new_name()}.partial"
        final = tmp.with_suffix("")
        writer: Writer | None = None
        try:
            tmp.mkdir()
            writer = Writer(tmp, manifest, counts, token_count)
            yield writer
            writer.finish(step, ann_mode)
            load(tmp, verify="full", searchable=False)  # what was written reads back whole
            step()
            tmp.rename(final)
            builds.fsync_dir(root)
            live = builds.served(out)
            if live is not None:
                builds.mark_published(live)  # served, so published: a rollback target
            _swap(out, final)
            builds.mark_published(final)
            writer.published = final
            step()
        except BaseException as exc:
            if writer is not None:
                writer.abort()
            if builds.served(out) != final.resolve():
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.rmtree(final, ignore_errors=True)
            if isinstance(exc, OSError):
                raise builds.write_error(root, exc, need) from None
            if isinstance(exc, RuntimeError) and "write" in str(exc).lower():
                raise BuildError(f"cannot write in {root}: {exc}") from None  # FAISS's I/O
            raise
        builds.prune(out)


def _stepper(progress: Callable[[int, int], None] | None, total: int) -> Callable[[], None]:
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    return step


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
        load(target, verify="full", searchable=False)
        live = builds.served(out)
        if live is not None:
            builds.mark_published(live)
        _swap(out, target)
    return target


def is_foreign(out: Path) -> bool:
    """A directory that exists and is not a podcite index: never written over."""
    return out.exists() and not out.is_symlink() and not (out / MANIFEST).exists()
