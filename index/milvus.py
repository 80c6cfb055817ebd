"""The Milvus search backend: the SearchBackend interface over one Milvus collection.

``index.milvus_store`` writes and publishes the collection (its docstring has
the schema); this module searches it.  The query path (``index.rank``) is the
same as for FAISS + bm25s: a dense list, a keyword list, each candidate's
score on the other side, then podcite's own weighted fusion
(``index.fusion.fuse``).  Milvus's hybrid search (its RRF and weighted rankers)
is not used: its weighted ranker normalises each list's scores itself, which
is the min-max-like normalisation podcite measured worse than dividing BM25 by
the question's ceiling (docs/retrieval.md), and the fused order must be the one
``podcite eval`` calibrated (docs/benchmarks.md compares the two backends).

- Filters become a Milvus filter expression evaluated inside both searches
  (``expression``), never a post-filter that could empty a list.
- BM25 is Milvus's built-in function over podcite's own normalised tokens, with
  bm25s's k1 and b: the same terms, IDF form and length normalisation, so the
  scores agree up to Milvus's constant (k1 + 1) factor, which the weighted
  fusion's ceiling divides away.  ``keyword_ceiling`` is, as for bm25s, the sum
  over the question's terms of the best score each term gives any passage (one
  top-1 search per term, kept until the collection changes).
- Passage records and sentence vectors are read from the collection's JSON
  field when a hit needs them (a small LRU keeps the last few thousand): nothing
  is held per passage in this process.
- ``add`` upserts by passage id (a passage already there keeps its row) and
  ``drop_document`` deletes by document id; both update the manifest written
  with the collection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from index import milvus_store as ms
from index.backend import LRU, Index, Ranking
from index.records import Filters

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from index.embedder import Embedder
    from index.tokens import TokenBits
    from ingest.records import Passage

MAX_LIMIT = 16384  # Milvus's largest top-k
_RECORDS = 4096
# A passage, its sentence vectors and its stored tokens (None: none stored).
_Record = tuple["Passage", "NDArray[np.float32]", "TokenBits | None"]
PREFETCH = 8  # rows of each list's head fetched with a record asked for
_BM25 = {"metric_type": "BM25"}
_IP = {"metric_type": "IP"}


# The escapes Milvus's expression parser reads; every other character goes in
# as itself.  It rejects JSON's \uXXXX (so a transcript named "… ｜ Huberman
# Lab Podcast #49.mp3.vtt" could not be asked for) and \b, \f, \v, which it
# takes raw (tests/test_milvus.py tries each).
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def lit(value: str | int | Sequence[str] | Sequence[int]) -> str:
    """A Milvus expression literal: a double-quoted string, an integer, or a
    list of either.  Milvus Lite does not take bound filter parameters, so
    values are quoted here and nowhere else."""
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'
    return "[" + ",".join(lit(v) for v in value) + "]"


def expression(filters: Filters) -> str:
    """The Milvus filter expression of ``filters``, with the rules of
    ``Filters.admits``: a date filter leaves out passages without a date."""
    parts: list[str] = []
    if filters.kind:
        parts.append(f"kind == {lit(filters.kind)}")
    if filters.episode:
        parts.append(f"episode == {lit(filters.episode)}")
    if filters.after or filters.before:
        parts.append('date != ""')
    if filters.after:
        parts.append(f"date >= {lit(filters.after)}")
    if filters.before:
        parts.append(f"date <= {lit(filters.before)}")
    return " and ".join(parts)


class MilvusBackend:
    def __init__(self, mc: Any, collection: str, manifest: dict[str, Any], uri: str = "") -> None:
        self._mc = mc
        self.uri = uri
        self.collection = collection
        self.manifest = manifest  # the Index holds this same dict: add/drop keep it current
        self._dim = int(manifest["dimension"])
        mc.load_collection(collection)
        self._records: LRU[int, _Record] = LRU(_RECORDS)
        self._fetched: dict[int, _Record] = {}  # prefetched
        self._term_max: dict[str, float] = {}
        self._count: int | None = None
        self._last_dense: tuple[bytes, dict[int, float]] = (b"", {})
        self._last_keyword: tuple[str, dict[int, float]] = ("", {})

    # -- what it holds ---------------------------------------------------------

    @property
    def has_keyword(self) -> bool:
        return True

    def count(self) -> int:
        if self._count is None:
            self._count = ms.count(self._mc, self.collection)
        return self._count

    def _record(self, row: int) -> _Record:
        def fetch() -> _Record:
            self._fetch_records([row, *self._likely()])
            if row not in self._fetched:
                raise KeyError(f"no passage at row {row} in {self.collection}")
            return self._fetched.pop(row)

        return self._records.get(row, fetch)

    def _likely(self) -> list[int]:
        """Rows a search will probably look at next: the heads of the last dense
        and keyword lists (fused results come from them).  Fetched with the row
        asked for, in one query: each query to Milvus costs a round trip."""
        heads = [*list(self._last_dense[1])[:PREFETCH], *list(self._last_keyword[1])[:PREFETCH]]
        return [r for r in dict.fromkeys(heads) if r not in self._fetched]

    def _fetch_records(self, rows: list[int]) -> None:
        from index.serial import passage_from_dict

        res = self._mc.query(
            self.collection, filter=f"row in {lit(rows)}", output_fields=["row", "record"]
        )
        for r in res:
            rec = r["record"]
            got = (
                passage_from_dict(rec["passage"]),
                ms.decode_sentences(rec["sv"], self._dim),
                ms.decode_tokens(rec, self._dim),
            )
            self._fetched[int(r["row"])] = got
            if len(self._fetched) > _RECORDS:
                self._fetched.pop(next(iter(self._fetched)))

    def passage(self, row: int) -> Passage:
        return self._record(row)[0]

    def kinds(self, rows: Sequence[int]) -> list[tuple[str, str | None]]:
        # The records hold no separate columns; the heads of the last lists are
        # fetched with the first row asked for, so this is mostly the cache.
        return [(p.kind, p.episode.id if p.episode else None) for p in map(self.passage, rows)]

    def sentence_vectors(self, row: int) -> NDArray[np.float32]:
        return self._record(row)[1]

    def token_bits(self, row: int) -> TokenBits | None:
        """From the row's record, fetched with it (None: passages upserted
        through ``add``, which carry none)."""
        return self._record(row)[2]

    def document_rows(self, document_id: str) -> list[int]:
        res = self._mc.query(
            self.collection,
            filter=f"document == {lit(document_id)}",
            output_fields=["row", "start"],
        )
        return [int(r["row"]) for r in sorted(res, key=lambda r: (r["start"], r["row"]))]

    # -- dense -----------------------------------------------------------------

    def dense(self, q: NDArray[np.float32], n: int, filters: Filters) -> Ranking:
        res = self._mc.search(
            self.collection,
            data=[np.asarray(q, dtype=np.float32).tolist()],
            anns_field="vector",
            limit=min(n, MAX_LIMIT),
            filter=expression(filters),
            search_params=_IP,
            output_fields=["row"],
        )
        out = [(int(h["row"]), float(h["distance"])) for h in res[0]]
        key = np.asarray(q, dtype=np.float32).tobytes()
        known = self._last_dense[1] if self._last_dense[0] == key else {}
        self._last_dense = (key, {**known, **dict(out)})
        return out

    def cosines(self, q: NDArray[np.float32], rows: Sequence[int]) -> NDArray[np.float32]:
        """Exact cosines: those the last dense search returned, the rest from the
        stored vectors (whatever the vector index, these are exact)."""
        key = np.asarray(q, dtype=np.float32).tobytes()
        known = self._last_dense[1] if self._last_dense[0] == key else {}
        missing = [r for r in rows if r not in known]
        found: dict[int, float] = {}
        if missing:
            res = self._mc.query(
                self.collection,
                filter=f"row in {lit(missing)}",
                output_fields=["row", "vector"],
            )
            if res:
                vecs = np.asarray([r["vector"] for r in res], dtype=np.float32)
                scores = vecs @ np.asarray(q, dtype=np.float32)
                found = {int(r["row"]): float(s) for r, s in zip(res, scores, strict=True)}
        return np.array([known.get(r, found.get(r, 0.0)) for r in rows], dtype=np.float32)

    # -- keyword ---------------------------------------------------------------

    def _bm25_search(self, text: str, limit: int, expr: str) -> list[tuple[int, float]]:
        res = self._mc.search(
            self.collection,
            data=[text],
            anns_field="sparse",
            limit=min(limit, MAX_LIMIT),
            filter=expr,
            search_params=_BM25,
            output_fields=["row"],
        )
        # Milvus Lite hands BM25 scores back negated (smaller is nearer); a BM25
        # score is never negative, so its magnitude is the score on either.
        return [(int(h["row"]), abs(float(h["distance"]))) for h in res[0]]

    def keyword(self, query: str, n: int, filters: Filters) -> Ranking:
        tokens = ms.milvus_tokens(query)
        if not tokens:
            return []
        found = self._bm25_search(" ".join(tokens), n, expression(filters))
        out = [(r, s) for r, s in found if s > 0]
        known = self._last_keyword[1] if self._last_keyword[0] == query else {}
        self._last_keyword = (query, {**known, **dict(out)})
        return out

    def keyword_scores(self, query: str, rows: Sequence[int]) -> NDArray[np.float32]:
        tokens = ms.milvus_tokens(query)
        known = self._last_keyword[1] if self._last_keyword[0] == query else {}
        missing = [r for r in rows if r not in known]
        found: dict[int, float] = {}
        if tokens and missing:
            found = dict(
                self._bm25_search(" ".join(tokens), len(missing), f"row in {lit(missing)}")
            )
        return np.array([known.get(r, found.get(r, 0.0)) for r in rows], dtype=np.float32)

    def keyword_ceiling(self, query: str) -> float:
        tokens = ms.milvus_tokens(query)
        missing = [t for t in tokens if t not in self._term_max]
        if missing:  # one request: a top-1 BM25 search per new term
            res = self._mc.search(
                self.collection,
                data=missing,
                anns_field="sparse",
                limit=1,
                search_params=_BM25,
                output_fields=["row"],
            )
            for t, hits in zip(missing, res, strict=True):
                self._term_max[t] = abs(float(hits[0]["distance"])) if hits else 0.0
        return float(sum(self._term_max[t] for t in tokens))

    def close(self) -> None:
        ms.close(self._mc, self.uri)

    # -- changes -----------------------------------------------------------------

    def add(
        self,
        passages: Sequence[Passage],
        vectors: NDArray[np.float32],
        sentence_vectors: Sequence[NDArray[np.float32]],
    ) -> None:
        """Upsert by passage id: a passage already there keeps its row, a new one
        gets the next row."""
        counts = [len(s) for s in sentence_vectors]
        if len(passages) != len(vectors) or counts != [len(p.sentences) for p in passages]:
            raise ValueError("add: passages, vectors and sentence vectors disagree")
        if not passages:
            return
        ids = [p.id for p in passages]
        res = self._mc.query(
            self.collection,
            filter=f"pid in {lit(ids)}",
            output_fields=["row", "pid"],
        )
        existing = {r["pid"]: int(r["row"]) for r in res}
        meta = self.manifest.setdefault("milvus", {})
        next_row = int(meta.get("next_row", self.count()))
        rows: list[int] = []
        for p in passages:
            if p.id in existing:
                rows.append(existing[p.id])
            else:
                rows.append(next_row)
                next_row += 1
        ms.insert(
            self._mc,
            self.collection,
            ms.passages_rows(passages, vectors, sentence_vectors, rows),
            upsert=True,
        )
        meta["next_row"] = next_row
        docs = self.manifest.setdefault("documents", {})
        for p in passages:
            docs.setdefault(
                p.document_id,
                {
                    "path": p.path,
                    "kind": p.kind,
                    "title": p.document_title,
                    "episode": p.episode.id if p.episode else None,
                    "passages": 0,
                },
            )
        for document_id in dict.fromkeys(p.document_id for p in passages):  # a query each
            docs[document_id]["passages"] = len(self.document_rows(document_id))
        self._changed()

    def drop_document(self, document_id: str) -> int:
        rows = self.document_rows(document_id)
        if not rows:
            return 0
        self._mc.delete(self.collection, filter=f"document == {lit(document_id)}")
        self.manifest.get("documents", {}).pop(document_id, None)
        self._changed()
        return len(rows)

    def _changed(self) -> None:
        """Rows changed: forget what was derived from them, and write the manifest."""
        self._records.clear()
        self._fetched.clear()
        self._term_max.clear()
        self._count = None
        self._last_dense = (b"", {})
        self._last_keyword = ("", {})
        counts = self.manifest.setdefault("counts", {})
        counts["passages"] = self.count()
        counts["documents"] = len(self.manifest.get("documents", {}))
        ms.write_manifest(self._mc, self.collection, self.manifest)


def open_milvus_index(uri: str, alias: str, embedder: Embedder | None = None) -> Index:
    """The index the alias points at now, behind the Milvus backend.  The alias is
    resolved once: this Index keeps its collection even if a rebuild switches the
    alias (it is kept as the previous build), as a directory index keeps its build."""
    mc = ms.client(uri)
    collection = ms.resolve(mc, alias)
    manifest = ms.read_manifest(mc, collection)
    backend = MilvusBackend(mc, collection, manifest, uri)
    return Index(backend, backend.manifest, embedder)
