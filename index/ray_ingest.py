"""``podcite ingest --ray``: the ingest pipeline as a Ray Data job.

    list files (driver: ``ingest.loader.discover``, catalogs read first: every
    parse needs them)
      -> parse        Ray Data ``map``: one task per file, retried on a lost worker
      -> embed        Ray Data ``map_batches`` on an actor pool: each actor loads
                      the model once and computes a document's passages and
                      vectors with the same ``index.vectors.compute`` as the
                      in-process build
      -> write        driver: ``index.build.build`` assembles the documents in
                      discovery order (citation check, manifest) and publishes
                      once, to the index directory or to Milvus; nothing is
                      written before every document is back

The unit of parallel work is the document, not the passage: a transcript's
window vectors are pooled from one pass of the model over the whole transcript
(``index.vectors``), so one document's vectors are computed together exactly
as in-process, and the index is the same (same passage ids; vectors equal
within float tolerance, batching aside).  A file that fails to parse or embed
is reported as the in-process ingest reports it (its error, the others kept);
a worker that dies is retried by Ray (task retries, actor restarts).  What is
not done here: reusing the previous build's vectors (every document is
embedded), and transcribing audio (the feeds branch's step would be one more
``map_batches`` stage before "embed").
"""

from __future__ import annotations

import contextlib
import os
import pickle  # nosec B403: only this job's own tasks' results are unpickled
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.errors import BuildError
from index.tokens import TokenBits
from index.vectors import Previous, Vectors, compute, passage_key
from ingest.catalog import Catalog
from ingest.chunking import passages as make_passages
from ingest.errors import DocumentError
from ingest.records import Document

if TYPE_CHECKING:
    from index.embedder import Embedder
    from ingest.records import Passage

ROOT = Path(__file__).resolve().parent.parent  # the folder that holds ingest/ and index/
RETRIES = 3
START_TRIES = 3  # local Ray starts tried before the ingest gives up


@dataclass
class RayLoaded:
    """What the Ray job hands back: documents in discovery order, per-file errors,
    and each document's vectors (as ``index.vectors.compute`` made them)."""

    documents: list[Document] = field(default_factory=list)
    errors: list[DocumentError] = field(default_factory=list)
    catalog_files: list[Path] = field(default_factory=list)
    vectors: dict[str, Vectors] = field(default_factory=dict)


def start(address: str | None, workers: int = 2) -> None:
    """Connect to the Ray cluster at ``address``, or start a local one with
    ``workers`` CPUs; a Ray already started in this process is used as it is.
    Workers import this checkout of podcite (PYTHONPATH locally, ``py_modules``
    on a cluster) and need its packages installed (the model ships in one)."""
    if address:
        check_address(address)
    import ray

    if ray.is_initialized():
        return
    import index
    import ingest

    if address:
        ray.init(address=address, runtime_env={"py_modules": [index, ingest]})
        return
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    start_with_retries(
        partial(
            ray.init,
            num_cpus=workers,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": env},
        ),
        clear_failed_start,
    )


def clear_failed_start() -> None:
    """``ray.shutdown()``, and the processes a start that failed inside Ray's
    node set-up left running: Ray never registered them (they would die only
    with this process), and on 2 cores they starve the next try (seen in CI:
    the second try's GCS then timed out as well).  With no Ray started here,
    every Ray process below this one is the failed start's."""
    import ray

    ray.shutdown()
    import psutil  # Ray's own copy (ray/thirdparty_files), importable once ray is

    ours = []
    for c in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):  # gone already, or not ours to read
            if is_ray_command(c.cmdline()):
                c.kill()
                ours.append(c)
    psutil.wait_procs(ours, timeout=10)


def is_ray_command(cmd: Sequence[str]) -> bool:
    """Whether a process's command line is Ray's: its binaries and scripts live
    in the ray package, its workers and agents are named ``ray::...``."""
    return bool(cmd) and (cmd[0].startswith("ray::") or any("site-packages/ray/" in a for a in cmd))


def check_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, naming it, where a cluster address does not answer:
    ``ray.init`` retries a dead address for minutes (measured: still waiting
    after 2 min).  ``auto`` (a cluster started on this machine) is Ray's to find."""
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise BuildError(f"--ray {address}: give HOST:PORT, ray://HOST:PORT, auto or local")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as conn:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):  # as Ray reads it
                return  # a healthy cluster would refuse a plain greeting: TCP is all we can check
            reply = _http2_reply(conn)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise BuildError(f"--ray {address}: no Ray cluster answers there ({why})") from None
    if reply is None or not is_http2_settings(reply):
        raise BuildError(
            f"--ray {address}: something answers there, but not a Ray cluster "
            f"({describe_reply(reply)}); give the cluster's GCS port (6379 unless set) "
            "or its Ray Client port (ray://HOST:10001), not the dashboard's"
        )


# The client's opening of an HTTP/2 connection (RFC 9113 §3.4): the preface,
# then an empty SETTINGS frame.  Ray's GCS and Ray Client servers are gRPC,
# which answer it with their own SETTINGS frame.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _http2_reply(conn: socket.socket) -> bytes | None:
    """Greet a listening port as a gRPC client would, and read the first bytes
    of its reply (None where it says nothing within the connection's timeout).

    Written here rather than with a gRPC client because the question is only
    whether the port speaks HTTP/2 at all: ``ray.init`` at a port where an
    HTTP/1 service answers (the dashboard's 8265 is the usual slip) retries for
    minutes (measured: still retrying after 200 s)."""
    reply = b""
    with contextlib.suppress(TimeoutError):  # silence is an answer too
        conn.sendall(_HTTP2_PREFACE)
        while len(reply) < 9 and (chunk := conn.recv(9 - len(reply))):
            reply += chunk
    return reply or None


def is_http2_settings(reply: bytes) -> bool:
    """Whether ``reply`` opens with an HTTP/2 SETTINGS frame on stream 0 (RFC
    9113 §6.5), the first thing a gRPC server sends."""
    return len(reply) >= 9 and reply[3] == 0x04 and reply[5:9] == b"\0\0\0\0"


def describe_reply(reply: bytes | None) -> str:
    """A short, printable account of what a port said instead."""
    if not reply:
        return "no reply"
    if reply.startswith(b"HTTP/"):
        return "an HTTP/1 server"
    if reply.isascii() and reply.decode().isprintable():
        return f"it replied in text: {reply.decode()!r}"
    return f"not HTTP/2: {reply!r}"


def start_with_retries(
    init: Callable[[], object], reset: Callable[[], object], tries: int = START_TRIES
) -> None:
    """Start a local Ray, trying again after a failed start.

    Ray waits a fixed 30 s for its raylet to register and then gives up with a
    bare ``Exception`` ("The current node timed out during startup"); on a
    loaded machine a start that takes 3 s idle can pass that (it did once in
    CI).  A failed start leaves half a session behind, so ``reset`` clears it
    before the next try; after ``tries`` the last cause is a ``BuildError``."""
    cause: Exception | None = None
    for _ in range(tries):
        try:
            init()
            return
        except Exception as exc:  # Ray raises bare Exception on a timed-out start
            cause = exc
            reset()
    raise BuildError(
        f"could not start a local Ray in {tries} tries ({cause}); its logs are in "
        "/tmp/ray/session_latest/logs"
    )


def _parse(row: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    """One file -> its Document, or the error that names it (never raised:
    one bad file never loses the others)."""
    from ingest.loader import parse

    try:
        out: Any = parse(Path(row["path"]), row["doc_id"], catalog)
    except DocumentError as exc:
        out = _error(exc)
    return {"i": row["i"], "blob": pickle.dumps(out)}


def _error(exc: DocumentError) -> tuple[str, str, int, str]:
    """An error as plain values: DocumentError's own arguments do not pickle."""
    return ("error", exc.path, exc.line, exc.message)


class _Embed:
    """An actor of the pool: loads the model once, then embeds documents."""

    def __init__(self, model_dir: str | None, window_s: float, stride_s: float) -> None:
        import torch

        from index.embedder import SentenceTransformerEmbedder

        torch.set_num_threads(1)  # one CPU per actor
        self.embedder = SentenceTransformerEmbedder(Path(model_dir) if model_dir else None)
        self.window = (window_s, stride_s)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        blobs = []
        for blob in batch["blob"]:
            doc = pickle.loads(blob)  # nosec B301: written by this job's own parse task
            if isinstance(doc, Document):
                try:
                    doc = (doc, embed_document(doc, self.embedder, *self.window))
                except DocumentError as exc:
                    doc = _error(exc)
            blobs.append(pickle.dumps(doc))
        return {"i": batch["i"], "blob": np.array(blobs, dtype=object)}


def embed_document(doc: Document, embedder: Embedder, window_s: float, stride_s: float) -> Vectors:
    """One document's passages' vectors: what the in-process build computes for
    them (``index.vectors.compute`` with nothing to reuse)."""
    ps = make_passages(doc, window_s=window_s, stride_s=stride_s)
    keys = [passage_key(embedder.name, p, doc) for p in ps]
    return compute(ps, {doc.id: doc}, keys, embedder, Previous())


def _task_retries() -> dict[str, Any]:
    return {"max_retries": RETRIES}  # a parse task on a lost worker runs again


def _actor_retries() -> dict[str, Any]:
    return {"max_restarts": RETRIES, "max_task_retries": RETRIES}  # a dead actor restarts


def run(
    paths: Sequence[Path],
    *,
    address: str | None = None,
    workers: int = 2,
    model_dir: Path | None = None,
    window_s: float,
    stride_s: float,
) -> RayLoaded:
    """Parse and embed ``paths`` on Ray; everything comes back to the driver."""
    import ray.data

    from ingest import catalog as catalogs
    from ingest.lines import read_text
    from ingest.loader import CATALOG_SUFFIXES, discover

    out = RayLoaded()
    sources, out.errors = discover(paths)
    catalog = Catalog()
    items: list[dict[str, Any]] = []
    for src in sources:
        try:
            if src.path.suffix.lower() in CATALOG_SUFFIXES:
                catalog.merge(catalogs.read_csv(src.path))
                out.catalog_files.append(src.path)
                continue
            if src.path.suffix.lower() in {".md", ".markdown"}:
                from ingest.loader import _channel_page

                text, _ = read_text(src.path)
                if _channel_page(text):
                    catalog.merge(catalogs.read_channel_page(src.path, text))
                    out.catalog_files.append(src.path)
                    continue
        except DocumentError as exc:
            out.errors.append(exc)
            continue
        items.append({"i": len(items), "path": str(src.path), "doc_id": src.doc_id})
    if not items:
        return out
    start(address, workers)
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), 8 * workers))
    # Parsing is light: it takes no CPU of the budget, or the embedding actors,
    # one CPU each, would hold every CPU and the parse tasks would wait forever.
    parsed = ds.map(partial(_parse, catalog=catalog), num_cpus=0, ray_remote_args_fn=_task_retries)
    embedded = parsed.map_batches(
        _Embed,
        fn_constructor_kwargs={
            "model_dir": str(model_dir) if model_dir else None,
            "window_s": window_s,
            "stride_s": stride_s,
        },
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
        ray_remote_args_fn=_actor_retries,
    )
    results = sorted(embedded.take_all(), key=lambda r: int(r["i"]))
    if len(results) != len(items):
        raise BuildError(f"Ray returned {len(results)} of {len(items)} documents")
    for r in results:
        got = pickle.loads(r["blob"])  # nosec B301: written by this job's own embed actor
        if isinstance(got, tuple) and got[0] == "error":
            out.errors.append(DocumentError(*got[1:]))
            continue
        doc, vectors = got
        out.documents.append(doc)
        out.vectors[doc.id] = vectors
    return out


def assembled(loaded: RayLoaded) -> Callable[..., Vectors]:
    """A ``compute_vectors`` for ``index.build.build``: the vectors the Ray job
    computed, in the build's passage order (checked passage by passage)."""

    def compute_vectors(
        passages: list[Passage],
        docs: dict[str, Document],
        keys: list[str],
        embedder: Embedder,
        prev: Previous,
        progress: Callable[[int, int], None] | None = None,
    ) -> Vectors:
        rows: list[np.ndarray[Any, Any]] = []
        sentences: list[np.ndarray[Any, Any]] = []
        tokens: list[TokenBits] = []
        embedded = 0
        at: dict[str, int] = {}
        for p in passages:
            v = loaded.vectors[p.document_id]
            j = at.get(p.document_id, 0)
            at[p.document_id] = j + 1
            rows.append(v.passages[j])
            sentences.append(v.sentences[j])
            tokens.append(v.tokens[j])
            if len(v.sentences[j]) != len(p.sentences):
                raise BuildError(f"{p.path}: the Ray job's passages differ from the build's")
        for d in at:
            embedded += loaded.vectors[d].embedded
            if at[d] != len(loaded.vectors[d].passages):
                raise BuildError(f"{d}: the Ray job's passages differ from the build's")
        if progress:
            progress(len(passages), len(passages))
        return Vectors(np.stack(rows).astype(np.float32), sentences, embedded, 0, tokens)

    return compute_vectors
