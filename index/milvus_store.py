"""Milvus as podcite's index store: one collection per build, an alias to publish.

What a build computed (``index.store.Stored``: passages, vectors, sentence
vectors, keys, manifest) is written to a new collection ``<name>_b<stamp>``,
counted back, and only then published by pointing the alias ``<name>`` at it
(``create_alias`` the first time, ``alter_alias`` after): a reader resolves the
alias once when it opens, so it never sees a half-written collection.  The
build before is kept (a server still open on it keeps answering until it
reopens) and older ones are dropped, as ``index.store`` keeps two builds.

One row per passage:

    row        INT64 primary key: the passage's row (build order), what the
               SearchBackend interface hands around
    pid        the passage's own id (upserts find a passage's row by it)
    document, kind, episode, date, start   scalar fields that filters run on
               inside the search (a Milvus filter expression, never a post-filter)
    vector     FLOAT_VECTOR, L2-normalised: inner product is the cosine
    tokens     podcite's own BM25 tokens (``index.keyword.normalise_tokens``),
               spelled so Milvus's standard tokenizer keeps each one whole
               (``milvus_tokens``), and analysed by Milvus's BM25 function into
    sparse     SPARSE_FLOAT_VECTOR (BM25, k1 and b as bm25s's defaults)
    record     JSON: the passage record (``index.serial.passage_to_dict``),
               its sentence vectors as base64 float16 (``sv``) and, where the
               build stores them, its sentences' token sign bits as base64
               (``tb``) with each sentence's token count (``tc``;
               index/tokens.py); Milvus Lite has no FLOAT16_VECTOR, and a row
               per sentence would be another round trip per hit

The manifest (model, dimension, counts, documents) is written as collection
properties (``podcite.manifest.<i>`` chunks of JSON), so it goes with the
collection through the alias switch and ``Index.manifest`` reads the same as
for a directory.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from index.errors import BuildError, IndexMissingError
from index.keyword import normalise_tokens, passage_text
from index.tokens import TokenBits
from index.tokens import width as token_width

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from index.store import Stored
    from ingest.records import Passage

KEEP_BUILDS = 2  # the live build and the one before it
BATCH = 500  # rows per insert
MANIFEST_KEY = "podcite.manifest"
CHUNK = 60_000  # characters of manifest JSON per property
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}  # bm25s's defaults: the same scores up to scale
_PLAIN = re.compile(r"[a-z0-9.\-]+")


def client(uri: str) -> Any:
    """A pymilvus client: a local file path runs Milvus Lite in this process,
    ``http://host:19530`` talks to a Milvus server or cluster."""
    from pymilvus import MilvusClient

    return MilvusClient(uri)


def close(mc: Any, uri: str) -> None:
    """Close the client and, for Milvus Lite, stop its server in this process:
    a Lite file is open in one process at a time, so ``podcite ingest`` must let
    go of it before ``podcite serve`` can open it."""
    mc.close()
    if "://" not in uri:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)


def milvus_token(token: str) -> str:
    """One podcite token as one token of Milvus's standard tokenizer (measured:
    it splits on "-" and "." but keeps "_" inside a word).  "-" becomes "_" and
    "." becomes "__"; anything else outside [a-z0-9] is spelled as "_" and its
    UTF-8 in hex.  Injective: podcite's tokens never contain "_", and only the
    hex spelling starts with it."""
    if _PLAIN.fullmatch(token):
        return token.replace(".", "__").replace("-", "_")
    return "_" + token.encode().hex()


def milvus_tokens(text: str) -> list[str]:
    """``text``'s BM25 tokens, each once in order of first use, as Milvus spells
    them (a query: bm25s ignores query term frequency, so repeats are dropped)."""
    return [milvus_token(t) for t in dict.fromkeys(normalise_tokens(text))]


def encode_sentences(vectors: NDArray[Any]) -> str:
    return base64.b64encode(np.asarray(vectors, dtype=np.float16).tobytes()).decode("ascii")


def decode_sentences(text: str, dim: int) -> NDArray[np.float32]:
    raw = np.frombuffer(base64.b64decode(text), dtype=np.float16)
    out: NDArray[np.float32] = raw.reshape(-1, dim).astype(np.float32)
    return out


def encode_tokens(bits: TokenBits) -> dict[str, Any]:
    return {"tb": base64.b64encode(bits.bits.tobytes()).decode("ascii"), "tc": bits.counts.tolist()}


def decode_tokens(record: dict[str, Any], dim: int) -> TokenBits | None:
    """A record's stored tokens; None where its build stored none."""
    if "tb" not in record:
        return None
    raw = np.frombuffer(base64.b64decode(record["tb"]), dtype=np.uint8)
    return TokenBits(raw.reshape(-1, token_width(dim)), np.asarray(record["tc"], np.int32))


def row_of(
    row: int,
    p: Passage,
    vector: NDArray[Any],
    sentences: NDArray[Any],
    tokens: TokenBits | None = None,
) -> dict[str, Any]:
    """The collection row of one passage."""
    from index.serial import passage_to_dict

    record = {"passage": passage_to_dict(p), "sv": encode_sentences(sentences)}
    if tokens is not None:
        record |= encode_tokens(tokens)
    episode = p.episode
    return {
        "row": row,
        "pid": p.id,
        "document": p.document_id,
        "kind": p.kind,
        "episode": episode.id if episode and episode.id else "",
        "date": episode.date if episode and episode.date else "",
        "start": p.start,
        "vector": np.asarray(vector, dtype=np.float32).tolist(),
        "tokens": " ".join(milvus_token(t) for t in normalise_tokens(passage_text(p))),
        "record": record,
    }


def create(mc: Any, name: str, dim: int, index: str = "FLAT") -> None:
    """An empty passage collection (``index``: FLAT, exact, or HNSW for scale)."""
    from pymilvus import DataType, Function, FunctionType

    s = mc.create_schema(auto_id=False, description="podcite passages")
    s.add_field("row", DataType.INT64, is_primary=True)
    s.add_field("pid", DataType.VARCHAR, max_length=1024)
    s.add_field("document", DataType.VARCHAR, max_length=2048)
    s.add_field("kind", DataType.VARCHAR, max_length=32)
    s.add_field("episode", DataType.VARCHAR, max_length=256)
    s.add_field("date", DataType.VARCHAR, max_length=32)
    s.add_field("start", DataType.INT64)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    s.add_field(
        "tokens",
        DataType.VARCHAR,
        max_length=65535,
        enable_analyzer=True,
        analyzer_params={"tokenizer": "standard"},
    )
    s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    s.add_field("record", DataType.JSON)
    s.add_function(
        Function(
            name="bm25",
            function_type=FunctionType.BM25,
            input_field_names=["tokens"],
            output_field_names=["sparse"],
        )
    )
    ip = mc.prepare_index_params()
    params = {"M": 16, "efConstruction": 200} if index == "HNSW" else {}
    ip.add_index("vector", index_type=index, metric_type="IP", params=params)
    ip.add_index(
        "sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS
    )
    # Strong: an upsert or a delete is seen by the next search (tests, incremental ingest).
    mc.create_collection(name, schema=s, index_params=ip, consistency_level="Strong")


def rows_of(data: Stored, first_row: int = 0) -> Iterator[dict[str, Any]]:
    stored = data.token_bits is not None
    for i, p in enumerate(data.passages):
        tokens = data.tokens_of(i) if stored else None
        yield row_of(first_row + i, p, data.vectors[i], data.sentence_vectors_of(i), tokens)


def insert(
    mc: Any,
    name: str,
    rows: Iterator[dict[str, Any]],
    upsert: bool = False,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``rows`` in batches; ``progress(rows written)`` after each."""
    done = 0
    batch: list[dict[str, Any]] = []
    for r in rows:
        batch.append(r)
        if len(batch) == BATCH:
            (mc.upsert if upsert else mc.insert)(name, batch)
            done += len(batch)
            batch = []
            if progress is not None:
                progress(done)
    if batch:
        (mc.upsert if upsert else mc.insert)(name, batch)
        done += len(batch)
    if progress is not None:
        progress(done)
    return done


def count(mc: Any, name: str) -> int:
    mc.load_collection(name)  # a collection opened afresh is released until loaded
    res = mc.query(name, filter="row >= 0", output_fields=["count(*)"])
    return int(res[0]["count(*)"])


def write_manifest(mc: Any, name: str, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, ensure_ascii=False)
    parts = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]
    props = {f"{MANIFEST_KEY}.{i}": part for i, part in enumerate(parts)}
    props[f"{MANIFEST_KEY}.parts"] = str(len(parts))
    mc.alter_collection_properties(name, properties=props)


def read_manifest(mc: Any, name: str) -> dict[str, Any]:
    props: dict[str, str] = mc.describe_collection(name).get("properties", {})
    parts = props.get(f"{MANIFEST_KEY}.parts")
    if parts is None:
        raise IndexMissingError(f"Milvus collection {name} is not a podcite index (no manifest)")
    text = "".join(props[f"{MANIFEST_KEY}.{i}"] for i in range(int(parts)))
    manifest: dict[str, Any] = json.loads(text)
    return manifest


def resolve(mc: Any, alias: str) -> str:
    """The collection the alias points at now."""
    if alias not in mc.list_aliases().get("aliases", []):
        raise IndexMissingError(
            f"no podcite index {alias!r} in Milvus: "
            "run `podcite ingest` with PODCITE_BACKEND=milvus"
        )
    return str(mc.describe_alias(alias)["collection_name"])


def builds(mc: Any, alias: str) -> list[str]:
    """This index's collections, oldest first (their names end in a sortable stamp)."""
    prefix = f"{alias}_b"
    return sorted(c for c in mc.list_collections() if c.startswith(prefix))


def publish(
    mc: Any,
    alias: str,
    data: Stored,
    index: str = "FLAT",
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Write ``data`` as a new collection, check it, switch ``alias`` to it; returns
    the collection.  A failure at any point drops the new collection and leaves the
    alias where it was.  ``progress(done, total)`` counts the rows written."""
    if not data.passages:
        raise BuildError("nothing to publish")
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
    name = f"{alias}_b{stamp}"
    try:
        create(mc, name, int(data.vectors.shape[1]), index)

        def rows_done(n: int) -> None:
            if progress is not None:
                progress(n, len(data.passages))

        written = insert(mc, name, rows_of(data), progress=rows_done)
        mc.flush(name)
        if written != len(data.passages) or count(mc, name) != len(data.passages):
            raise BuildError(f"Milvus collection {name}: rows written do not match the build")
        write_manifest(mc, name, {**data.manifest, "milvus": {"collection": name, "index": index}})
        if alias in mc.list_aliases().get("aliases", []):
            mc.alter_alias(name, alias)
        else:
            mc.create_alias(name, alias)
    except BaseException:
        if mc.has_collection(name) and not _is_live(mc, alias, name):
            mc.drop_collection(name)
        raise
    prune(mc, alias, keep=KEEP_BUILDS)
    return name


def _is_live(mc: Any, alias: str, name: str) -> bool:
    try:
        return resolve(mc, alias) == name
    except IndexMissingError:
        return False


def prune(mc: Any, alias: str, keep: int) -> None:
    live = resolve(mc, alias)
    old = [c for c in builds(mc, alias) if c != live]
    for c in old[: max(0, len(old) - (keep - 1))]:
        mc.drop_collection(c)


def passages_rows(
    passages: Sequence[Passage],
    vectors: NDArray[np.float32],
    sentences: Sequence[NDArray[Any]],
    rows: Sequence[int],
) -> Iterator[dict[str, Any]]:
    for r, p, v, s in zip(rows, passages, vectors, sentences, strict=True):
        yield row_of(r, p, v, s)
