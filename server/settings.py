"""One settings object for the whole app, read from PODCITE_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.search import ABSTAIN_BELOW


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PODCITE_", env_file=None, extra="ignore")

    index_dir: Path = Field(
        Path("data/index"), description="The index directory to serve and build."
    )
    corpus_dir: Path = Field(
        Path("corpus"), description="Documents indexed when no index exists yet."
    )
    model_dir: Path | None = Field(
        None,
        description="A sentence-transformers model directory; default: packaged all-MiniLM-L6-v2.",
    )
    embed_backend: Literal["torch", "onnx"] = Field(
        "onnx",
        description="What runs the embedding model: onnx, an int8 export made once into "
        "~/.cache/podcite (faster; median cosine 0.995 to torch's vectors), or torch.",
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
    metrics: bool = Field(True, description="Expose Prometheus metrics at /metrics.")
    verify_index: bool = Field(True, description="Check the index files' checksums when loading.")
