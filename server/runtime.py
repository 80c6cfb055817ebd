"""Opening the index for questions, as the settings say: one helper for the
server, ``podcite ask`` and ``podcite eval``.

Imports of the model and FAISS happen inside, so importing this module costs
nothing (``podcite --help`` stays fast)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.settings import Settings

if TYPE_CHECKING:
    from index.backend import Index
    from index.embedder import Backend, Embedder, SentenceTransformerEmbedder
    from index.store import Stored


def embedder(settings: Settings, threads: int | None = None) -> SentenceTransformerEmbedder:
    """The model the settings name; without one, the model the index's manifest
    records as the one that built it (a tuned model, ``podcite tune``), else the
    packaged all-MiniLM-L6-v2; run as ``embed_backend`` says: what embeds
    questions.  ``threads``: the onnx backend's threads per forward pass (None:
    one per core).  A tuned model's name is the one its directory gives
    (``tuned-<weights hash>``), whatever path it is reached by."""
    return _embedder(settings, settings.embed_backend, threads)


def ingest_embedder(settings: Settings) -> SentenceTransformerEmbedder:
    """The same model run as ``ingest_backend`` says: what embeds passages."""
    return _embedder(settings, settings.ingest_backend)


def _embedder(
    settings: Settings, backend: Backend, threads: int | None = None
) -> SentenceTransformerEmbedder:
    from index.embedder import SentenceTransformerEmbedder
    from index.training import read_meta

    model_dir = settings.model_dir or built_with(settings)
    meta = read_meta(model_dir) if model_dir is not None else None
    name = str(meta["name"]) if meta and meta.get("name") else None
    return SentenceTransformerEmbedder(model_dir, name=name, backend=backend, threads=threads)


def built_with(settings: Settings) -> Path | None:
    """The model directory an index directory's manifest records (None: the
    packaged model, no index yet, or the Milvus backend).  A recorded directory
    that is gone is an error that says so, not a silent switch of models."""
    from index import store
    from ingest.errors import PodciteError

    if settings.backend != "faiss":
        return None
    try:
        manifest = store.read_manifest(settings.index_dir)
    except PodciteError:
        return None  # no index (yet), or one that the caller's own checks will refuse
    record = manifest.get("model")
    path = record.get("path") if isinstance(record, dict) else None
    if not path:
        return None
    if not (Path(path) / "config.json").is_file():
        raise PodciteError(
            f"{settings.index_dir} was built with the model at {path}, which is gone; "
            "set PODCITE_MODEL_DIR (or --model) to it, or ingest again with --replace"
        )
    return Path(path)


def open_for_queries(settings: Settings, warm: bool = True) -> Index:
    """The index the settings name, checked as they say (``verify_index``), with
    its question embedder; warmed so the first question pays no start-up cost."""
    from index.open import warm as warm_up

    # One thread per question: a server runs search_threads of them side by side
    # (server/limits.py), as FAISS and torch do.
    index = open_backend(settings, embedder(settings, threads=1))
    if warm:
        warm_up(index)
    return index


def rereading_warning(settings: Settings) -> str | None:
    """What to tell the operator when the re-reading is on and the index
    directory stores no token vectors (built before podcite stored them): each
    search then embeds its candidates again, 50-100 ms on two cores."""
    from index import store

    if settings.backend != "faiss" or settings.rerank < 2:
        return None
    if (settings.index_dir.resolve() / store.SIGN_BITS).is_file():
        return None
    return (
        f"{settings.index_dir} stores no token vectors (built before podcite stored "
        f"them): re-reading the first {settings.rerank} candidates embeds them at every "
        "search (50-100 ms); run `podcite ingest` again to store them, or set "
        "PODCITE_RERANK=0"
    )


def open_backend(settings: Settings, model: Embedder | None) -> Index:
    """The index behind the backend the settings choose: the index directory
    (FAISS + bm25s) or the Milvus collection named by ``milvus_collection``."""
    if settings.backend == "milvus":
        from index.milvus import open_milvus_index

        return open_milvus_index(settings.milvus_uri, settings.milvus_collection, model)
    from index.open import open_index

    return open_index(settings.index_dir, model, settings.verify_index, settings.ann)


def publisher(
    settings: Settings, progress: Callable[[int, int], None] | None = None
) -> Callable[[Path, Stored], object]:
    """Where ``podcite ingest`` publishes a build: the index directory
    (``index.store.publish``) or, for the milvus backend, a new Milvus collection
    behind the alias ``milvus_collection``; ``progress(done, total)`` as it writes."""
    from index import store

    if settings.backend != "milvus":
        return lambda out, data: store.publish(out, data, progress, settings.ann)

    def to_milvus(_out: Path, data: Stored) -> object:
        from index import milvus_store

        mc = milvus_store.client(settings.milvus_uri)
        try:
            return milvus_store.publish(mc, settings.milvus_collection, data, progress=progress)
        finally:
            milvus_store.close(mc, settings.milvus_uri)

    return to_milvus


def target(settings: Settings) -> str:
    """What an ingest writes to, in words."""
    if settings.backend == "milvus":
        return f"Milvus {settings.milvus_uri} ({settings.milvus_collection})"
    return str(settings.index_dir)


def sources(
    paths: list[Path],
    settings: Settings,
    ray: str | None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """What ``podcite ingest`` builds from: the documents (``ingest.load``'s
    ``Loaded``, or, with ``ray`` (an address or "local"), parsed and embedded as a
    Ray Data job, ``index.ray_ingest``), and ``index.build.build``'s arguments for
    them: where to publish (``progress`` as it writes), and on Ray the vectors it
    computed."""
    how: dict[str, Any] = {"publish": publisher(settings, progress)}
    if ray is None:
        from ingest import load

        return load(paths), how
    from index.ray_ingest import assembled, run
    from ingest.windows import STRIDE_S, WINDOW_S

    loaded = run(
        paths,
        address=None if ray == "local" else ray,
        model_dir=settings.model_dir,
        window_s=WINDOW_S,
        stride_s=STRIDE_S,
    )
    return loaded, {**how, "compute_vectors": assembled(loaded)}
