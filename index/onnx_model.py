"""The embedding model run by ONNX Runtime, from an export made here.

The first use exports the packaged sentence-transformers model to ONNX and,
for ``int8`` (questions), quantises it (dynamic int8, per-channel weights),
once, into a model cache folder outside site-packages (default
``$XDG_CACHE_HOME/podcite`` or ``~/.cache/podcite``); later uses load the
cached file.  Nothing is downloaded.  ``fp32`` keeps the exported weights as
they are: the same vectors as torch (cosine ≥ 0.99999 over real passages), in
two thirds of torch's time on batches, so it embeds passages at ingest
(docs/benchmarks.md, "Ingest").

Why not sentence-transformers' own ``backend="onnx"`` and its
``export_dynamic_quantized_onnx_model``: both go through optimum-onnx, whose
only release requires transformers 4.x and so would downgrade the
transformers 5 that sentence-transformers 6 needs.  The same two steps are
done here with torch's exporter and ``onnxruntime.quantization``, and at
query time the tokenizer (``tokenizers``) and the ONNX Runtime session are
called directly: no torch, no transformers, no optimum on the query path.

The cache folder is found without platformdirs (not otherwise a dependency):
podcite runs on Linux, where the XDG rule is the whole of it.

Export and cache writes are atomic (a temporary folder beside the target,
then ``os.replace``) and the file's SHA-256 is recorded next to it, so a
killed export or a damaged file is redone rather than loaded.  A lock file
keeps several worker processes from exporting at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from index.hf import quiet_loading
from index.store import file_sha256
from ingest.errors import PodciteError

if TYPE_CHECKING:
    from numpy.typing import NDArray

# Bumped when the export recipe changes, so older caches are not reused.
EXPORT_VERSION = 1
MODEL_FILE = "model_int8.onnx"
Precision = Literal["int8", "fp32"]
FILES: dict[str, str] = {"int8": MODEL_FILE, "fp32": "model_fp32.onnx"}
OPSET = 17
# Above this size a model file is fingerprinted by size and mtime, not read:
# hashing the 90 MB of weights would cost a quarter of a second per start.
_HASH_WHOLE_BELOW = 1 << 20
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# By class name: sentence-transformers 5+ saves its modules under new paths
# ("sentence_transformers.base.modules.transformer.Transformer").
_MODULES_SUPPORTED = {"Transformer", "Pooling", "Normalize"}


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/podcite`` or ``~/.cache/podcite``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "podcite"


def fingerprint(model_dir: Path) -> str:
    """A short key for the model's files, the name of its cache folder."""
    h = hashlib.sha256(f"export-{EXPORT_VERSION}".encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(model_dir).as_posix()}\0{st.st_size}\0".encode())
        if st.st_size < _HASH_WHOLE_BELOW:
            h.update(path.read_bytes())
        else:
            h.update(str(st.st_mtime_ns).encode())
    return h.hexdigest()[:16]


def _check_modules(model_dir: Path) -> None:
    """The ONNX path does mean pooling and normalising itself: refuse models
    that need anything else (a Dense layer, CLS pooling) rather than be wrong."""
    modules = model_dir / "modules.json"
    if modules.is_file():
        listed = json.loads(modules.read_text(encoding="utf-8"))
        kinds = {str(m.get("type", "")).rsplit(".", 1)[-1] for m in listed}
        if not kinds <= _MODULES_SUPPORTED:
            raise PodciteError(
                f"{modules}: modules {sorted(str(k) for k in kinds - _MODULES_SUPPORTED)} "
                "are not supported by the onnx backend; use backend 'torch'"
            )
    pooling = model_dir / "1_Pooling" / "config.json"
    if pooling.is_file():
        cfg = json.loads(pooling.read_text(encoding="utf-8"))
        # sentence-transformers <5 writes flags, 5+ one "pooling_mode" (a tuned model).
        modes = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v]
        if "pooling_mode" in cfg:
            modes = [str(cfg["pooling_mode"])]
        if modes not in (["pooling_mode_mean_tokens"], ["mean"]):
            raise PodciteError(
                f"{pooling}: the onnx backend does mean pooling only, this model asks for {modes}"
            )


def max_tokens_of(model_dir: Path) -> int:
    """sentence-transformers' rule: ``max_seq_length`` if the model says it,
    else the smaller of the tokenizer's and the position embeddings' limits."""
    sbert = model_dir / "sentence_bert_config.json"
    if sbert.is_file():
        limit = json.loads(sbert.read_text(encoding="utf-8")).get("max_seq_length")
        if limit:
            return int(limit)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    limits = [int(config.get("max_position_embeddings", 512))]
    tok_cfg = model_dir / "tokenizer_config.json"
    if tok_cfg.is_file():
        tok = json.loads(tok_cfg.read_text(encoding="utf-8"))
        limits.append(int(tok.get("model_max_length", 1 << 30)))
    return min(limits)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _valid(model: Path) -> bool:
    """The file is whole: its size and SHA-256 are those recorded after it was written."""
    try:
        meta = json.loads(model.with_suffix(".json").read_text(encoding="utf-8"))
        return bool(model.stat().st_size == meta["bytes"] and file_sha256(model) == meta["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def cached_model(
    model_dir: Path,
    cache_dir: Path | None = None,
    *,
    redo: bool = False,
    precision: Precision = "int8",
) -> Path:
    """The ONNX file of ``precision`` for ``model_dir``, exported first if
    missing or damaged."""
    root = (cache_dir or default_cache_dir()) / "models" / fingerprint(model_dir)
    folder = root / f"onnx-{precision}"
    model = folder / FILES[precision]
    if not redo and _valid(model):
        return model
    try:
        with _locked(folder):
            if redo or not _valid(model):  # another process may have exported meanwhile
                if precision == "int8":
                    export_int8(model_dir, model)
                else:
                    export_int8(model_dir, model, quantise=False)
    except PodciteError:
        raise
    except OSError as exc:
        raise PodciteError(
            f"{folder}: cannot write the onnx model cache ({exc}); "
            "give another cache folder or use embed backend 'torch'"
        ) from exc
    except Exception as exc:  # the exporter's or quantiser's own errors
        raise PodciteError(f"{model_dir}: onnx export failed: {exc!r}") from exc
    return model


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_int8(model_dir: Path, dest: Path, quantise: bool = True) -> None:
    """Export ``model_dir``'s transformer to ONNX (fp32), quantise it to int8
    (dynamic, per-channel QInt8 weights: measured the closest to torch of the
    variants tried, see docs/benchmarks.md) unless ``quantise`` is False, and
    publish it at ``dest``.

    torch and transformers are imported here only: once per machine."""
    import logging
    import warnings

    import onnxruntime
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    quiet_loading()
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Eager attention: the traced graph is then plain MatMul/Softmax, which the
    # quantiser and every ONNX Runtime build understand.
    # A local model directory (site-packages or PODCITE_MODEL_DIR), never the hub.
    base = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()  # nosec B615
    takes = inspect.signature(base.forward).parameters
    names = [n for n in _INPUTS if n in takes]

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = base

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            out = self.base(**dict(zip(names, args, strict=True)))
            return out.last_hidden_state  # type: ignore[no-any-return]

    # The example batch has padding, so the traced graph keeps the mask path.
    ids = torch.full((2, 9), 1000, dtype=torch.long)
    mask = torch.ones((2, 9), dtype=torch.long)
    mask[1, 5:] = 0
    example = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".export-") as tmp:
        fp32, int8 = Path(tmp) / "model.onnx", Path(tmp) / MODEL_FILE
        with warnings.catch_warnings(), torch.inference_mode():
            # The TorchScript exporter is deprecated in torch 2.9+ but needs no
            # onnxscript; torch is pinned, and the test suite checks the result.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Hidden(),
                tuple(example[n] for n in names),
                str(fp32),
                dynamo=False,
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=OPSET,
            )
        if quantise:
            # quantize_dynamic logs advice through the root logger on every call.
            logging.disable(logging.WARNING)
            try:
                quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True)
            finally:
                logging.disable(logging.NOTSET)
        else:
            int8 = fp32
        with int8.open("rb+") as fh:
            os.fsync(fh.fileno())
        meta = {
            "bytes": int8.stat().st_size,
            "sha256": file_sha256(int8),
            "source": str(model_dir),
            "quantisation": "dynamic int8, per-channel QInt8 weights, QUInt8 activations"
            if quantise
            else "none (fp32)",
            "export_version": EXPORT_VERSION,
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
        }
        # The model first, its record second: a file without a matching record
        # is never trusted (see _valid).
        dest.with_suffix(".json").unlink(missing_ok=True)
        os.replace(int8, dest)
    _write_atomic(dest.with_suffix(".json"), json.dumps(meta, indent=1).encode())


class OnnxModel:
    """Tokenizer plus ONNX Runtime session: last hidden states, mean pooled."""

    def __init__(
        self,
        model_dir: Path,
        cache_dir: Path | None = None,
        threads: int | None = None,
        precision: Precision = "int8",
    ) -> None:
        _check_modules(model_dir)
        self.threads = threads
        tok_file = model_dir / "tokenizer.json"
        if not tok_file.is_file():
            raise PodciteError(f"{tok_file}: missing; the onnx backend needs a fast tokenizer")
        from tokenizers import Tokenizer

        self.max_tokens = max_tokens_of(model_dir)
        self._counter = Tokenizer.from_file(str(tok_file))
        self._counter.no_truncation()
        self._counter.no_padding()
        self.tokenizer = Tokenizer.from_file(str(tok_file))
        # tokenizer.json may carry its own fixed padding/truncation (this one
        # pads to 128): set the model's limit and pad to the batch's longest.
        pad = self.tokenizer.padding or {}
        self.tokenizer.enable_truncation(max_length=self.max_tokens)
        self.tokenizer.enable_padding(
            pad_id=int(pad.get("pad_id", 0)), pad_token=str(pad.get("pad_token", "[PAD]"))
        )
        self.path = cached_model(model_dir, cache_dir, precision=precision)
        try:
            self.session = self._session()
        except Exception:  # a valid-looking file this runtime will not load: make it anew
            self.path = cached_model(model_dir, cache_dir, redo=True, precision=precision)
            self.session = self._session()
        self.inputs = [i.name for i in self.session.get_inputs()]
        width = self.session.get_outputs()[0].shape[-1]
        if not isinstance(width, int):
            config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
            width = int(config["hidden_size"])
        self.dimension: int = width

    def _session(self) -> Any:
        """``threads``: ONNX Runtime's own pool for one run (None: one thread per
        core).  A server gives 1: its searches already run side by side, one per
        search thread, and a pool per search would only contend for the cores."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def token_count(self, text: str) -> int:
        """Tokens the model would see without truncation, special tokens included."""
        return len(self._counter.encode(text).ids)

    def hidden(
        self, texts: Sequence[str]
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_], list[list[tuple[int, int]]]]:
        """Token vectors ``(batch, tokens, dim)``, the mask of real tokens, and
        each token's character offsets in its text, from one forward pass."""
        enc = self.tokenizer.encode_batch(list(texts))
        feeds = {
            "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
        }
        (out,) = self.session.run(["last_hidden_state"], {n: feeds[n] for n in self.inputs})
        return out, feeds["attention_mask"].astype(bool), [list(e.offsets) for e in enc]

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Mean-pooled, unnormalised sentence vectors (the caller normalises)."""
        out, mask, _ = self.hidden(texts)
        weights = mask[..., None].astype(np.float32)
        summed = (out * weights).sum(axis=1)
        return summed / np.maximum(weights.sum(axis=1), 1e-9)  # type: ignore[no-any-return]
