"""Writing an index directory: a build written aside, verified, published in
one atomic step, pruned, and rolled back (the format: index/store/__init__.py;
index/builds.py: the lock, names, leftovers)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index import ann, builds
from index.builds import builds_dir
from index.errors import BuildError
from index.keyword import KeywordIndex, keyword_index_of, passage_tokens
from index.rows import Carried, RowWriter
from index.store.read import (
    ANN,
    DATA_FILES,
    FORMAT_VERSION,
    KEYS,
    KEYWORD,
    MANIFEST,
    PASSAGES,
    SELF,
    SENTENCES,
    SIGN_BITS,
    SIGN_STARTS,
    TOKENS,
    VECTORS,
    Stored,
    file_sha256,
    files_of,
    load,
    manifest_digest,
)
from index.tokens import TokenBits
from index.tokens import width as token_width
from ingest.records import Passage

if TYPE_CHECKING:
    from numpy.typing import NDArray


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
    with writing(out, data.manifest, counts, progress, ann_mode, needed_bytes(data), total) as w:
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
            self._bits = open_memmap(tmp / SIGN_BITS, "w+", np.uint8, shape)
            self._starts = open_memmap(tmp / SIGN_STARTS, "w+", np.int64, (counts[1] + 1,))
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
        stored = [SIGN_BITS, SIGN_STARTS] if self._bits is not None else []
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
        names += [f"{KEYWORD}/{f.name}" for f in files_of(tmp / KEYWORD)]
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
