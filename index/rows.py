"""An index's rows without one Python object per passage: part of the store
(only index/store/ reads and writes these files; its docstring lists them).

A million passages parsed into ``Passage`` objects take gigabytes and a minute,
so a loaded index holds none of them:

- ``Columns``: what filters and ``document_rows`` need of every row (kind,
  document, episode, date, start offset, sentence count) as NumPy arrays over
  small string tables (``rows.npy``, ``rows.json``).  A filter is a few
  vectorised comparisons (``admitted``), with exactly the rules of
  ``Filters.admits``; dates are codes into the sorted table of dates, so a date
  range is a range of codes.
- ``PassageTable``: ``passages.jsonl`` and the byte offset of every line
  (``passages.offsets.npy``); a passage is parsed when asked for and kept in a
  small LRU.  The file is memory-mapped, so the table keeps reading the build it
  opened even after a newer build is published and this one pruned.
- ``RowWriter``: writes the three in batches, for builds too large to hold.
"""

from __future__ import annotations

import json
import mmap
import threading
from abc import abstractmethod
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from index.serial import passage_from_json, passage_to_dict

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from index.records import Filters
    from ingest.records import Passage

OFFSETS = "passages.offsets.npy"
ROWS = "rows.npy"
TABLES = "rows.json"
ROW_DTYPE = np.dtype(
    [
        ("kind", "u1"),
        ("document", "<i4"),
        ("episode", "<i4"),  # -1: no episode
        ("date", "<i4"),  # -1: no date
        ("start", "<i8"),
        ("sentences", "<i4"),
    ]
)
CACHE = 4096  # passages kept parsed (a query reads ~20-100)


@dataclass(frozen=True)
class Columns:
    """Per-row facts as arrays; codes index the tables."""

    kind: NDArray[np.uint8]
    document: NDArray[np.int32]
    episode: NDArray[np.int32]
    date: NDArray[np.int32]
    start: NDArray[np.int64]
    sentences: NDArray[np.int32]
    kinds: tuple[str, ...]
    documents: tuple[str, ...]
    episodes: tuple[str, ...]
    dates: tuple[str, ...]  # sorted

    def __len__(self) -> int:
        return int(self.kind.size)

    @cached_property
    def sentence_start(self) -> NDArray[np.int64]:
        """Row of each passage's first sentence vector."""
        starts = np.zeros(len(self), dtype=np.int64)
        if len(self):
            np.cumsum(self.sentences[:-1], out=starts[1:])
        return starts

    @cached_property
    def _kind_codes(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.kinds)}

    @cached_property
    def _document_codes(self) -> dict[str, int]:
        return {d: i for i, d in enumerate(self.documents)}

    @cached_property
    def _episode_codes(self) -> dict[str, int]:
        return {e: i for i, e in enumerate(self.episodes)}

    def admitted(self, filters: Filters) -> NDArray[np.bool_]:
        """The rows ``filters`` admit (``Filters.admits``, vectorised)."""
        if filters.episode:
            mask = np.zeros(len(self), dtype=bool)
            mask[self.episode_rows(filters)] = True
            return mask
        return self._kind_and_date(slice(None), filters)

    def _kind_and_date(self, at: slice | NDArray[np.intp], filters: Filters) -> NDArray[np.bool_]:
        kind, date = self.kind[at], self.date[at]
        mask = np.ones(kind.size, dtype=bool)
        if filters.kind:
            mask &= kind == self._kind_codes.get(filters.kind, -1)
        if filters.after or filters.before:
            # A passage without a date (code -1) is left out of any date range.
            low = bisect_left(self.dates, filters.after) if filters.after else 0
            high = bisect_right(self.dates, filters.before) if filters.before else len(self.dates)
            mask &= (date >= low) & (date < high)
        return mask

    @cached_property
    def _by_episode(self) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        order = np.argsort(self.episode, kind="stable")  # rows ascending within an episode
        bounds = np.searchsorted(self.episode[order], np.arange(-1, len(self.episodes) + 1))
        return order, bounds

    def episode_rows(self, filters: Filters) -> NDArray[np.intp]:
        """The rows an episode filter admits (``filters.episode`` set), ascending,
        without a pass over every row: an episode is a few hundred rows of a
        million, and the moment of each wiki result asks for one."""
        code = self._episode_codes.get(filters.episode or "")
        if code is None:
            return np.zeros(0, dtype=np.intp)
        order, bounds = self._by_episode
        rows = order[bounds[code + 1] : bounds[code + 2]]
        return rows[self._kind_and_date(rows, filters)]

    def document_counts(self) -> dict[str, int]:
        counts = np.bincount(self.document, minlength=len(self.documents))
        return {d: int(c) for d, c in zip(self.documents, counts, strict=True) if c}

    @cached_property
    def _by_document(self) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        order = np.lexsort((self.start, self.document))
        bounds = np.searchsorted(self.document[order], np.arange(len(self.documents) + 1))
        return order, bounds

    def document_rows(self, document_id: str) -> list[int]:
        """One document's rows in the order of their text (start offset)."""
        code = self._document_codes.get(document_id)
        if code is None:
            return []
        order, bounds = self._by_document
        return [int(r) for r in order[bounds[code] : bounds[code + 1]]]

    def take(self, rows: NDArray[np.intp]) -> Columns:
        return Columns(
            self.kind[rows], self.document[rows], self.episode[rows], self.date[rows],
            self.start[rows], self.sentences[rows],
            self.kinds, self.documents, self.episodes, self.dates,
        )  # fmt: skip

    def save(self, folder: Path) -> None:
        rows = np.empty(len(self), dtype=ROW_DTYPE)
        for name in ROW_DTYPE.names or ():
            rows[name] = getattr(self, name)
        np.save(folder / ROWS, rows)
        tables = {
            "kinds": self.kinds,
            "documents": self.documents,
            "episodes": self.episodes,
            "dates": self.dates,
        }
        (folder / TABLES).write_text(json.dumps(tables, ensure_ascii=False), encoding="utf-8")


def load_columns(folder: Path) -> Columns:
    rows = np.load(folder / ROWS)
    if rows.dtype != ROW_DTYPE:
        raise ValueError(f"{ROWS} has columns {rows.dtype}, expected {ROW_DTYPE}")
    t = json.loads((folder / TABLES).read_text(encoding="utf-8"))
    col = {name: np.ascontiguousarray(rows[name]) for name in ROW_DTYPE.names or ()}
    out = Columns(
        col["kind"], col["document"], col["episode"], col["date"], col["start"], col["sentences"],
        tuple(t["kinds"]), tuple(t["documents"]), tuple(t["episodes"]), tuple(t["dates"]),
    )  # fmt: skip
    if len(out) and (
        int(out.kind.max()) >= len(out.kinds)
        or int(out.document.max()) >= len(out.documents)
        or int(out.episode.max()) >= len(out.episodes)
        or int(out.date.max()) >= len(out.dates)
        or int(min(out.kind.min(), out.document.min(), out.sentences.min())) < 0
    ):
        raise ValueError(f"{ROWS} codes fall outside the tables of {TABLES}")
    return out


class ColumnsBuilder:
    """Columns of passages given in batches (dates coded in the order met,
    then renumbered into the sorted table at the end)."""

    def __init__(self) -> None:
        self._tables: tuple[dict[str, int], ...] = ({}, {}, {}, {})
        self._parts: list[NDArray[Any]] = []

    def add(self, passages: Iterable[Passage]) -> None:
        kinds, docs, eps, dates = self._tables
        part = []
        for p in passages:
            ep, date = p.episode, p.episode.date if p.episode else None
            part.append(
                (
                    kinds.setdefault(p.kind, len(kinds)),
                    docs.setdefault(p.document_id, len(docs)),
                    eps.setdefault(ep.id, len(eps)) if ep else -1,
                    dates.setdefault(date, len(dates)) if date else -1,
                    p.start,
                    len(p.sentences),
                )
            )
        self._parts.append(np.array(part, dtype=ROW_DTYPE))

    def add_columns(self, cols: Columns) -> None:
        """Rows of another build's columns, their codes moved into these tables."""
        theirs_all = (cols.kinds, cols.documents, cols.episodes, cols.dates)
        tables = zip(self._tables, theirs_all, strict=True)
        recode = [
            np.array([mine.setdefault(v, len(mine)) for v in theirs] + [-1], dtype=np.int64)
            for mine, theirs in tables
        ]
        part = np.empty(len(cols), dtype=ROW_DTYPE)
        coded: tuple[NDArray[np.integer[Any]], ...] = (
            cols.kind, cols.document, cols.episode, cols.date
        )  # fmt: skip
        names = ("kind", "document", "episode", "date")
        for name, codes, r in zip(names, coded, recode, strict=True):
            part[name] = r[codes]  # -1 (no episode, no date) stays -1: r[-1] is -1
        part["start"], part["sentences"] = cols.start, cols.sentences
        self._parts.append(part)

    def columns(self) -> Columns:
        rows = np.concatenate(self._parts) if self._parts else np.empty(0, dtype=ROW_DTYPE)
        kinds, docs, eps, dates = (tuple(t) for t in self._tables)
        ordered = tuple(sorted(dates))
        code = {d: i for i, d in enumerate(ordered)}
        renumber = np.array([code[d] for d in dates] + [-1], dtype=np.int32)
        return Columns(
            rows["kind"].copy(), rows["document"].copy(), rows["episode"].copy(),
            renumber[rows["date"]], rows["start"].copy(), rows["sentences"].copy(),
            kinds, docs, eps, ordered,
        )  # fmt: skip


def columns_of(passages: Iterable[Passage]) -> Columns:
    b = ColumnsBuilder()
    b.add(passages)
    return b.columns()


class _Rows(Sequence["Passage"]):
    """A sequence of passages by row: slices and negative rows handled once,
    ``_row`` given a row in range."""

    @abstractmethod
    def _row(self, i: int) -> Passage: ...

    @overload
    def __getitem__(self, i: int) -> Passage: ...

    @overload
    def __getitem__(self, i: slice) -> list[Passage]: ...

    def __getitem__(self, i: int | slice) -> Passage | list[Passage]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"row {i} of {n}")
        return self._row(i)


class PassageTable(_Rows):
    """passages.jsonl read on demand by row (see the module docstring)."""

    def __init__(
        self, path: Path, offsets: NDArray[np.int64], columns: Columns, cache: int = CACHE
    ) -> None:
        self.path = path
        self.columns = columns  # rows.npy: what filters need, without parsing a passage
        self.offsets = offsets
        with path.open("rb") as fh:
            size = path.stat().st_size
            self._data: mmap.mmap | bytes = (
                mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
            )
        if isinstance(self._data, mmap.mmap):
            self._data.madvise(mmap.MADV_RANDOM)  # rows are read at random: no readahead
        self._cache: OrderedDict[int, Passage] = OrderedDict()
        self._size = cache
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self.offsets.size) - 1

    def _row(self, i: int) -> Passage:
        with self._lock:
            hit = self._cache.get(i)
            if hit is not None:
                self._cache.move_to_end(i)
                return hit
        p = self._parse(i)
        with self._lock:
            self._cache[i] = p
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return p

    def line(self, i: int) -> bytes:
        """Row ``i``'s line of passages.jsonl, as stored (newline included)."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return bytes(self._data[a:b])

    def _parse(self, i: int) -> Passage:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return passage_from_json(self._data[a:b])

    def __iter__(self) -> Iterator[Passage]:
        """Every passage in row order, parsed as read (the cache is left alone)."""
        for i in range(len(self)):
            yield self._parse(i)


class RowWriter:
    """Writes passages.jsonl, its offsets and the columns, a batch at a time."""

    def __init__(self, folder: Path, passages_file: str) -> None:
        self.folder = folder
        self._fh = (folder / passages_file).open("wb")
        self._offsets = [0]
        self._columns = ColumnsBuilder()

    def add(self, passages: Iterable[Passage]) -> int:
        """Append ``passages``; how many sentences they hold."""
        batch = list(passages)  # a PassageTable is parsed once
        for p in batch:
            line = json.dumps(passage_to_dict(p), ensure_ascii=False).encode() + b"\n"
            self._fh.write(line)
            self._offsets.append(self._offsets[-1] + len(line))
        self._columns.add(batch)
        return sum(len(p.sentences) for p in batch)

    def copy(self, table: PassageTable, rows: NDArray[np.intp]) -> int:
        """Append rows of a loaded build as they are: their lines' bytes and
        columns, nothing parsed; how many sentences they hold."""
        for r in rows:
            line = table.line(int(r))
            self._fh.write(line)
            self._offsets.append(self._offsets[-1] + len(line))
        cols = table.columns.take(rows)
        self._columns.add_columns(cols)
        return int(cols.sentences.sum())

    def close(self) -> Columns:
        self._fh.close()
        np.save(self.folder / OFFSETS, np.array(self._offsets, dtype=np.int64))
        columns = self._columns.columns()
        columns.save(self.folder)
        return columns

    def abort(self) -> None:
        self._fh.close()


class Carried(_Rows):
    """A new build's passages: those made now, then rows of the previous build
    (a ``PassageTable``) carried over as they are.  The store writes the carried
    rows' lines byte for byte and takes their columns from the table, so a
    rebuild that changes one document parses none of the others; anything else
    (Milvus's publisher) reads them through the table like any sequence."""

    def __init__(self, new: Sequence[Passage], table: PassageTable, rows: NDArray[np.intp]) -> None:
        self.new = list(new)
        self.table = table
        self.rows = np.asarray(rows, dtype=np.intp)

    def __len__(self) -> int:
        return len(self.new) + int(self.rows.size)

    def _row(self, i: int) -> Passage:
        k = len(self.new)
        return self.new[i] if i < k else self.table[int(self.rows[i - k])]

    def __iter__(self) -> Iterator[Passage]:
        yield from self.new
        for r in self.rows:
            yield self.table[int(r)]

    @cached_property
    def columns(self) -> Columns:
        b = ColumnsBuilder()
        b.add(self.new)
        b.add_columns(self.table.columns.take(self.rows))
        return b.columns()

    def line_bytes(self) -> int:
        """The carried rows' share of passages.jsonl, in bytes."""
        offsets = self.table.offsets
        return int((offsets[self.rows + 1] - offsets[self.rows]).sum())
