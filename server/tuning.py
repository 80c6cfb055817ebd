"""``podcite tune``'s work: mine pairs from an index, train, publish the model.

Kept apart from server/cli.py so that module stays the list of commands (as
server/ingesting.py is for ingest).  The pairs are index/tune.py's, the
training index/training.py's; torch loads inside the functions.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from index.store import Stored
    from index.tune import Pair, PairKind


@dataclass(frozen=True)
class TuneRequest:
    out: Path | None = None  # folder of models; default: beside the index (module docstring)
    kinds: tuple[str, ...] = ("auto",)  # auto: index.tune.default_kinds
    negatives: str = "mixed"
    half: bool = False  # tune on one fixed-seed half of the episodes (to measure on the other)
    threads: int | None = None  # torch's CPU threads (default: torch's own choice)
    checkpoints: Path | None = None

    @property
    def auto(self) -> bool:
        """The default kinds: the citation pairs alone where there are enough."""
        return self.kinds == ("auto",)


def models_dir(index_dir: Path) -> Path:
    """Where tuned models live by default: ``data/index`` -> ``data/index.cache/models``
    (the same cache folder as downloads and transcripts, ingest/podcast.py)."""
    from ingest.podcast import cache_dir_for

    return cache_dir_for(index_dir) / "models"


def do_tune(
    settings: Settings, request: TuneRequest, train: Any, quiet: bool = False
) -> tuple[Path, dict[str, Any]]:
    """Mine, train (``train``: an ``index.training.TrainSettings``), publish; the
    model's directory and its card's figures."""
    from rich.console import Console

    from index import store
    from index.training import publish, settings_dict, summary
    from index.training import train as run_training
    from index.tune import PAIR_KINDS, counts, split_episodes
    from server.progress import Stages
    from server.runtime import embedder as make_embedder

    unknown = set() if request.auto else set(request.kinds) - set(PAIR_KINDS)
    if unknown:
        from ingest.errors import PodciteError

        raise PodciteError(f"unknown pair kind(s) {sorted(unknown)}: {', '.join(PAIR_KINDS)}")
    console = Console(stderr=True, quiet=quiet, soft_wrap=True)
    if request.threads:
        import torch

        torch.set_num_threads(request.threads)
    stored = store.load(settings.index_dir, verify=True, searchable=False)
    emb = make_embedder(settings)
    episodes = {p.episode.id for p in stored.passages if p.episode is not None}
    chosen = split_episodes(episodes)[0] if request.half else None
    t0 = time.perf_counter()
    with Stages(console) as stages:
        console.print(f"mining pairs from {settings.index_dir}", highlight=False)
        pairs = _mined(stored, chosen, emb, request)
        mined_s = time.perf_counter() - t0
        del stored  # the index's passages and vectors: gigabytes the training needs
        if not pairs:
            from ingest.errors import PodciteError

            raise PodciteError(
                f"{settings.index_dir}: no training pairs (a library needs transcripts, or "
                "wiki pages with headings)"
            )
        console.print(f"{len(pairs):,} pairs in {mined_s:.0f} s: {counts(pairs)}", highlight=False)

        recent: list[float] = []
        every = max(1, train.steps // 20)

        def step(done: int, total: int, loss: float) -> None:
            recent.append(loss)
            mean = sum(recent[-every:]) / len(recent[-every:])
            stages.update("training", done, total, "steps", f"loss {mean:.3f}")
            if stages.plain and done % every == 0:  # a log gets the loss as it goes
                console.print(f"training: step {done}/{total}, loss {mean:.3f}", highlight=False)

        with tempfile.TemporaryDirectory(prefix="podcite-tune-") as tmp:
            trained = Path(tmp) / "model"
            result = run_training(
                emb.model_dir, pairs, trained, train, step, checkpoints=request.checkpoints
            )
            stages.finish("training", f"loss {summary(result)['loss_end']:.3f}")
            card = {
                "base": str(emb.name),
                "index": str(settings.index_dir),
                "episodes": "one half (seed 15)" if request.half else "all",
                "pairs": counts(pairs),
                "negatives": request.negatives,
                "train": settings_dict(train),
                "mining_seconds": round(mined_s, 1),
                **summary(result),
            }
            target = publish(trained, request.out or models_dir(settings.index_dir), card)
    return target, card


def _mined(stored: Stored, chosen: set[str] | None, emb: Any, request: TuneRequest) -> list[Pair]:
    """The request's pairs; ``auto``: the citation pairs alone where there are
    enough of them (index.tune.default_kinds), else every kind (the citation
    pairs already mined, and the other kinds)."""
    from index.tune import PAIR_KINDS, default_kinds, mine

    def mined(kinds: Sequence[PairKind]) -> list[Pair]:
        return mine(
            stored,
            chosen,
            lambda texts: emb.encode(texts),
            kinds=kinds,
            negatives=request.negatives,  # type: ignore[arg-type]  # checked by the CLI
        )

    if not request.auto:
        return mined([k for k in PAIR_KINDS if k in request.kinds])
    pairs = mined(["citation"])
    rest = [k for k in default_kinds(len(pairs)) if k != "citation"]
    return pairs + mined(rest) if rest else pairs
