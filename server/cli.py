"""The ``podcite`` command: ingest, serve, ask (and eval).

Heavy modules (torch through the embedder, faiss, the web app) are imported
inside the commands, so ``podcite --help`` answers at once.  Domain errors
become one line on stderr and exit code 1 here, and only here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from index.records import MAX_RERANK_SETTING
from index.training import TrainSettings
from index.tune import MIN_CITATION_PAIRS
from ingest.errors import PodciteError
from ingest.records import KINDS
from server.ingesting import do_ingest
from server.settings import Settings

# `podcite tune`'s defaults are TrainSettings' own (torch is imported only to train).
TRAIN = TrainSettings()

app = typer.Typer(
    name="podcite",
    help="Ask questions of a podcast library; answers cite the moment of the episode.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: rich markup ate the "[default: ...]" texts and showed <bool> on flags.
    rich_markup_mode=None,
)

T = TypeVar("T")

IndexOpt = Annotated[
    Path | None,
    typer.Option("--index", help="Index directory [default: PODCITE_INDEX_DIR or data/index]."),
]


def _fail(message: str) -> typer.Exit:
    typer.secho(f"podcite: {message}", err=True, fg="red")
    return typer.Exit(code=1)


def _guard(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except PodciteError as exc:
        raise _fail(str(exc)) from None


def _settings(index: Path | None = None, **overrides: Any) -> Settings:
    """The settings, read once, with the command line's overrides (a copy: the
    settings object itself is never changed)."""
    update = {k: v for k, v in {"index_dir": index, **overrides}.items() if v is not None}
    return Settings().model_copy(update=update)


@app.command()
def ingest(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Files, folders and feed URLs to index: documents, catalogs, audio "
            "(.mp3 .m4a .wav .ogg .opus .flac), RSS/Atom feeds (default: corpus/)."
        ),
    ] = None,
    feed: Annotated[
        list[str] | None,
        typer.Option(help="A podcast feed's URL (or path); may be given more than once."),
    ] = None,
    index: IndexOpt = None,
    whisper_model: Annotated[
        Path | None,
        typer.Option(
            help="A CTranslate2 Whisper model directory for audio without a transcript "
            "(default: PODCITE_WHISPER_MODEL_DIR, else the packaged tiny.en)."
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            help="A sentence-transformers model directory, e.g. from `podcite tune` "
            "(default: PODCITE_MODEL_DIR, else the model the index was built with)."
        ),
    ] = None,
    strict: Annotated[bool, typer.Option(help="Fail the whole build on any bad document.")] = False,
    prune: Annotated[
        bool, typer.Option(help="Also remove documents whose files are gone, wherever they were.")
    ] = False,
    replace: Annotated[
        bool, typer.Option(help="Replace the index with just these documents (keep no others).")
    ] = False,
    rollback: Annotated[
        bool, typer.Option(help="Serve the previous build again (nothing is read or embedded).")
    ] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS|local",
            help="Parse and embed as a Ray Data job: on the Ray cluster at ADDRESS, "
            "or (local) on a Ray started here with 2 workers.",
        ),
    ] = None,
) -> None:
    """Add documents, feeds and audio to the index (new files added, changed ones
    re-indexed, the others kept; audio transcribed locally where no transcript is
    published) and publish the new build atomically."""
    settings = _settings(index, whisper_model_dir=whisper_model, model_dir=model)
    if rollback:
        from index import store

        build_dir = _guard(lambda: store.rollback(settings.index_dir))
        typer.echo(f"rolled back: {settings.index_dir} -> {build_dir.name}", err=True)
        return
    urls = [p for p in paths or () if "://" in p]
    files = [Path(p) for p in paths or () if "://" not in p]
    feeds = [*urls, *(feed or ())]
    if not files and not feeds:
        files = [settings.corpus_dir]
    _guard(lambda: do_ingest(files, settings, strict, False, prune, replace, feeds, ray))


@app.command()
def serve(
    index: IndexOpt = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 8000].")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes, each answering on the same port; they share the "
            "index's memory-mapped files.",
        ),
    ] = 1,
) -> None:
    """Serve the search page and the JSON API (builds an index from corpus/ if none exists)."""
    import uvicorn

    from server.app import create_app
    from server.runtime import rereading_warning
    from server.security import exposure_warning, uvicorn_limits

    settings = _settings(index, host=host, port=port)
    if settings.backend == "faiss" and not (
        settings.index_dir.exists() or settings.index_dir.is_symlink()
    ):
        typer.echo(
            f"no index at {settings.index_dir}; building one from {settings.corpus_dir}", err=True
        )
        _guard(lambda: do_ingest([settings.corpus_dir], settings, strict=False))
    for warning in (exposure_warning(settings), rereading_warning(settings)):
        if warning:
            typer.secho(f"podcite: warning: {warning}", err=True, fg="yellow")
    limits = uvicorn_limits(settings)
    where = {"host": settings.host, "port": settings.port, "log_level": "info", **limits}
    if workers > 1:
        if settings.backend == "milvus" and "://" not in settings.milvus_uri:
            raise _fail(
                f"--workers {workers}: Milvus Lite ({settings.milvus_uri}) is open in one "
                "process at a time; serve one worker, or a Milvus server (http://host:19530)"
            )
        # Checked here, before any worker loads the model: uvicorn reports a failing
        # startup itself (a traceback and its own exit code), nothing reaches us.
        _guard(lambda: check_index(settings))
        # uvicorn starts each worker as a new Python process, which builds its own
        # app (server.app.from_environment) from the environment: hand it the
        # command line's overrides there.
        os.environ.update(
            PODCITE_INDEX_DIR=str(settings.index_dir),
            PODCITE_HOST=settings.host,
            PODCITE_PORT=str(settings.port),
        )
        uvicorn.run("server.app:from_environment", factory=True, workers=workers, **where)
        return
    # One process: the index is opened (and checked) here, before uvicorn, so a bad
    # one is one line and exit code 1, and its files are read and verified once.
    from server.runtime import open_for_queries

    loaded = _guard(lambda: open_for_queries(settings))
    uvicorn.run(create_app(settings, index=loaded), **where)


def check_index(settings: Settings) -> None:
    """The index the settings name: its manifest, checksums and model (no model load).
    A Milvus backend's collection is checked when the server opens it."""
    from index import store
    from server.runtime import embedder

    if settings.backend != "faiss":
        return
    store.check_manifest(settings.index_dir, settings.verify_index, embedder(settings).name)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in plain words.")],
    index: IndexOpt = None,
    k: Annotated[int, typer.Option("-k", help="How many passages to show.")] = 5,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the /api/ask JSON.", metavar="")
    ] = False,
    open_first: Annotated[
        bool,
        typer.Option("--open", help="Open the first cited moment in the web browser.", metavar=""),
    ] = False,
    rerank: Annotated[
        int | None,
        typer.Option(
            help="Re-read the first N candidates token by token, 0-20 (0 = off; "
            "default: the rerank setting, PODCITE_RERANK).",
        ),
    ] = None,
) -> None:
    """Answer a question in the terminal: cited sentences, then the passages."""
    from index.query import parse

    settings = _settings(index)
    raw = {"q": question, "k": k, "rerank": rerank}
    params = _guard(lambda: parse(raw))  # checked before the model loads

    from index.query import run
    from server.runtime import open_for_queries
    from server.schemas import ask_response
    from server.terminal import open_first_moment, print_answer

    out = _guard(lambda: run(open_for_queries(settings), params, True, settings.query_options()))
    doc = ask_response(out)
    if json_out:
        sys.stdout.write(doc.model_dump_json(indent=2) + "\n")
    else:
        print_answer(doc, out.abstained)
    if open_first:
        _guard(lambda: open_first_moment(doc))


@app.command("eval")
def eval_(
    questions: Annotated[
        list[Path],
        typer.Argument(
            help="Question files (JSON lines): syn_test/qna_test, relevant_qs/irrelevant_qs, "
            "eval/wiki_questions, eval/moment_questions, eval/out_of_scope.",
            exists=True,
            dir_okay=False,
        ),
    ],
    index: IndexOpt = None,
    mode: Annotated[
        str,
        typer.Option(help="dense, bm25, hybrid, hybrid-rrf, hybrid-weighted, or all (each)."),
    ] = "all",
    json_out: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Only the first N questions whose answer is in the index."),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(help="Search only this kind of source: wiki or transcript."),
    ] = None,
    scope_audit: Annotated[
        Path | None,
        typer.Option(
            help="Hand-audited in/out-of-scope labels overriding the files' own "
            "(eval/scope_audit.jsonl for the shared relevant/irrelevant sets).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    rerank: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_RERANK_SETTING,
            help="Re-read the first N candidates token by token (0 = off; "
            "default: the rerank setting, PODCITE_RERANK).",
        ),
    ] = None,
) -> None:
    """Score retrieval on question files: hit@1, hit@5, MRR@10, nDCG@10, cited times, latency."""
    import json

    from index.evaluate import ALL_MODES, EVAL_MODES, run_eval, table
    from server.runtime import open_for_queries

    modes = list(ALL_MODES) if mode == "all" else [mode]
    if not set(modes) <= set(EVAL_MODES):
        raise _fail(f"--mode must be one of {', '.join((*EVAL_MODES, 'all'))}")
    if kind is not None and kind not in KINDS:
        raise _fail(f"--kind must be {' or '.join(KINDS)}")
    settings = _settings(index)

    def go() -> list[Any]:
        idx = open_for_queries(settings)  # the model loads outside the timed searches
        second = settings.query_options().rerank
        if rerank is not None:
            second = replace(second, top=rerank)
        return [run_eval(idx, questions, m, limit, kind, scope_audit, second) for m in modes]

    reports = _guard(go)
    if json_out:
        sys.stdout.write(json.dumps([r.to_dict() for r in reports], indent=2) + "\n")
    else:
        typer.echo(table(reports))


@app.command()
def tune(
    index: IndexOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the tuned model [default: beside the index, <index>.cache/models]."
        ),
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="Training steps.")] = TRAIN.steps,
    batch_size: Annotated[int, typer.Option(min=2, help="Pairs per step.")] = TRAIN.batch_size,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = TRAIN.lr,
    minutes: Annotated[
        float | None,
        typer.Option(help="Stop training after this long, whatever the steps (0: no bound)."),
    ] = 25,
    pairs: Annotated[
        str,
        typer.Option(
            help="Kinds of pairs, comma-separated: citation,heading,cloze; auto: the "
            f"citation pairs alone where there are {MIN_CITATION_PAIRS} or more, else all three."
        ),
    ] = "auto",
    interpolate: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Share of the trained weights kept, the rest the base's."
        ),
    ] = TRAIN.interpolate,
    negatives: Annotated[
        str, typer.Option(help="Hard negatives: mixed, same (episode), other, or none.")
    ] = "mixed",
    half: Annotated[
        bool, typer.Option(help="Tune on one fixed half of the episodes (to measure on the other).")
    ] = False,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for torch.")] = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option(
            help=f"Save the model every {TRAIN.checkpoint_every} steps under this folder."
        ),
    ] = None,
) -> None:
    """Adapt the embedding model to the library: train all-MiniLM-L6-v2 on pairs mined
    from the index (checked wiki citations where there are enough, else headings and
    transcript cloze too), keep half the base's weights, write it with a model card;
    rebuild with `podcite ingest --model DIR --replace PATHS`."""
    from server.tuning import TuneRequest, do_tune

    if negatives not in ("mixed", "same", "other", "none"):
        raise _fail("--negatives must be mixed, same, other or none")
    settings = _settings(index)
    kinds = tuple(k.strip() for k in pairs.split(",") if k.strip())
    request = TuneRequest(out, kinds, negatives, half, threads, checkpoints)
    train = TrainSettings(
        steps=steps, batch_size=batch_size, lr=lr, minutes=minutes or None, interpolate=interpolate
    )
    target, card = _guard(lambda: do_tune(settings, request, train))
    typer.echo(
        f"tuned {card['steps']} steps in {card['seconds']:.0f} s on {card['device']} "
        f"(loss {card['loss_start']:.3f} -> {card['loss_end']:.3f}): {target}\n"
        f"rebuild with it: podcite ingest --model {target} --replace PATHS",
        err=True,
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
