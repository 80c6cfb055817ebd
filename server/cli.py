"""The ``podcite`` command: ingest, serve, ask (and eval).

Heavy modules (torch through the embedder, faiss, the web app) are imported
inside the commands, so ``podcite --help`` answers at once.  Domain errors
become one line on stderr and exit code 1 here, and only here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ingest.errors import PodciteError
from ingest.records import KINDS
from server.settings import Settings

if TYPE_CHECKING:
    from index import BuildReport
    from ingest.podcast import Media

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


def do_ingest(
    paths: list[Path],
    settings: Settings,
    strict: bool,
    quiet: bool = False,
    prune: bool = False,
    replace: bool = False,
    feeds: Sequence[str] = (),
    ray: str | None = None,
) -> BuildReport:
    from index import store
    from index.errors import BuildError

    if store.is_foreign(settings.index_dir):
        raise BuildError(f"{settings.index_dir} exists and is not a podcite index")
    with store.lock(settings.index_dir):  # one writer, from the first file read to publishing
        return _ingest(paths, settings, strict, quiet, prune, replace, feeds, ray)


def _ingest(
    paths: list[Path],
    settings: Settings,
    strict: bool,
    quiet: bool,
    prune: bool,
    replace: bool,
    feeds: Sequence[str] = (),
    ray: str | None = None,
) -> BuildReport:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from index import build
    from index.errors import BuildError
    from ingest import load
    from server.runtime import embedder as make_embedder
    from server.runtime import publisher, sources, target

    console = Console(stderr=True, quiet=quiet)
    t0 = time.perf_counter()
    if ray is None:
        with _media_progress(console, settings) as media:
            loaded = load(paths, feeds, media)
        if media.transcripts:
            console.print(_transcribed_summary(media), highlight=False)
        how: dict[str, Any] = {"publish": publisher(settings)}
    else:  # feeds and audio are read in process only (docs/scale.md)
        if feeds:
            raise BuildError("--ray reads files and folders; ingest feeds without --ray")
        with console.status(f"parsing and embedding on Ray ({ray})"):
            loaded, how = sources(paths, settings, ray)  # where to publish, vectors from Ray
    embedder = make_embedder(settings)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("embedding", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = build(
            loaded.documents,
            settings.index_dir,
            embedder,
            errors=loaded.errors,
            strict=strict,
            catalog_files=loaded.catalog_files,
            progress=progress,
            roots=[p for p in paths if p.is_dir()],
            prune=prune,
            replace=replace,
            **how,
        )
    for line in report.errors:
        console.print(f"[red]skipped[/red] {line}", highlight=False)
    for line in report.warnings[:20]:
        console.print(f"[yellow]warning[/yellow] {line}", highlight=False)
    if len(report.warnings) > 20:
        console.print(f"[yellow]… and {len(report.warnings) - 20} more warnings (see the manifest)")
    seconds = time.perf_counter() - t0
    for doc_id in report.removed[:20]:
        console.print(f"[yellow]removed[/yellow] {doc_id} (its file is gone)", highlight=False)
    console.print(
        f"{len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.removed)} removed, {len(report.kept)} kept",
        highlight=False,
    )
    console.print(
        f"indexed {report.documents} documents, {report.passages} passages "
        f"({report.embedded} embedded, {report.reused} reused), "
        f"{len(report.warnings)} warnings, {len(report.errors)} skipped, "
        f"{seconds:.1f} s -> {target(settings)}",
        highlight=False,
    )
    return report


@contextmanager
def _media_progress(console: Any, settings: Settings) -> Iterator[Media]:
    """Feeds' and audio's cache beside the index, and their progress: bytes
    for downloads, audio time for transcription (``12:40 / 2:01:33, 9.8× real time``)."""
    from rich.progress import BarColumn, Progress

    from ingest.audio import Transcriber
    from ingest.clock import format_clock
    from ingest.podcast import Media, cache_dir_for

    tasks: dict[str, Any] = {}
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "{task.fields[detail]}",
        console=console,
        transient=True,
    ) as bar:

        def task(key: str, description: str) -> Any:
            if key not in tasks:
                tasks[key] = bar.add_task(description, total=None, detail="")
            return tasks[key]

        def downloaded(url: str, done: int, total: int | None) -> None:
            name = url.rsplit("/", 1)[-1][:40]
            size = f"{done / 1e6:.1f} / {total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
            bar.update(task(url, f"downloading {name}"), completed=done, total=total, detail=size)

        def transcribing(name: str, done: float, total: float, wall: float) -> None:
            speed = f", {done / wall:.1f}× real time" if wall > 0 else ""
            bar.update(
                task(f"t:{name}", f"transcribing {name[:40]}"),
                completed=done,
                total=total,
                detail=f"{format_clock(done)} / {format_clock(total)}{speed}",
            )

        media = Media(
            cache_dir=cache_dir_for(settings.index_dir),
            transcriber=Transcriber(settings.whisper_model_dir),
            on_download=downloaded,
            on_transcribe=transcribing,
        )
        reading = bar.add_task("reading documents", total=None, detail="")
        yield media
        bar.remove_task(reading)


def _transcribed_summary(media: Media) -> str:
    made = [t for t in media.transcripts if not t.cached]
    reused = len(media.transcripts) - len(made)
    line = ""
    if made:
        audio = sum(t.audio_seconds for t in made)
        wall = sum(t.wall_seconds for t in made)
        speed = f" ({audio / wall:.1f}× real time)" if wall > 0 else ""
        line = (
            f"transcribed {len(made)} audio files with {made[0].model}: "
            f"{_span(audio)} of audio in {_span(wall)}{speed}"
        )
    if reused:
        line += ("; " if line else "") + f"{reused} transcripts reused from {media.cache_dir}"
    return line


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


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
    settings = _settings(index, whisper_model_dir=whisper_model)
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
) -> None:
    """Serve the search page and the JSON API (builds an index from corpus/ if none exists)."""
    import uvicorn

    from server.app import create_app
    from server.security import exposure_warning, uvicorn_limits

    settings = _settings(index, host=host, port=port)
    if settings.backend == "faiss" and not (
        settings.index_dir.exists() or settings.index_dir.is_symlink()
    ):
        typer.echo(
            f"no index at {settings.index_dir}; building one from {settings.corpus_dir}", err=True
        )
        _guard(lambda: do_ingest([settings.corpus_dir], settings, strict=False))
    warning = exposure_warning(settings)
    if warning:
        typer.secho(f"podcite: warning: {warning}", err=True, fg="yellow")
    # Checked here, before the model loads: uvicorn reports a failing startup itself
    # (a traceback and its own exit code), so nothing raised in the lifespan reaches us.
    _guard(lambda: check_index(settings))
    application = create_app(settings)
    limits = uvicorn_limits(settings)
    uvicorn.run(application, host=settings.host, port=settings.port, log_level="info", **limits)


def check_index(settings: Settings) -> None:
    """The index the settings name: its manifest, checksums and model (no model load)."""
    from index import store
    from server.runtime import embedder

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
) -> None:
    """Answer a question in the terminal: cited sentences, then the passages."""
    from index.query import parse

    settings = _settings(index)
    params = _guard(lambda: parse({"q": question, "k": k}))  # checked before the model loads

    from index.query import run
    from server.runtime import open_for_queries
    from server.schemas import ask_response

    out = _guard(lambda: run(open_for_queries(settings), params, True, settings.query_options()))
    doc = ask_response(out)
    if json_out:
        sys.stdout.write(doc.model_dump_json(indent=2) + "\n")
    else:
        _print_answer(doc, out.abstained)
    if open_first:
        _open_first(doc)


def _print_answer(doc: Any, abstained: bool) -> None:
    """The answer for a person: sentences as terminal hyperlinks to their moment
    (where the terminal supports them; the URL is printed beside them too)."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    answer, results = doc.answer, doc.results
    console.print(f"[bold]{escape(doc.query)}[/bold]")
    if abstained:
        console.print(
            "\nNothing in the library answers this; the nearest passages are weak matches."
        )
    if answer:
        console.print("\n[bold]Answer[/bold] (from the sources, word for word)")
        for a in answer:
            text = f"[link={a.url}]{escape(a.text)}[/link]" if a.url else escape(a.text)
            console.print(f"  • {text} [cyan]{_when(a.timestamp)}[/cyan] {a.url or ''}")
    console.print(f"\n[bold]{len(results)} passages[/bold] ({doc.took_ms:.0f} ms)")
    for r in results:
        ep = escape(r.episode.title if r.episode else "episode unknown")
        trail = escape(" › ".join([r.document.title, *r.section]))
        when = f"[link={r.url}]{_when(r.timestamp)}[/link]" if r.url else _when(r.timestamp)
        console.print(f"\n[bold]{r.rank}.[/bold] [cyan]{when}[/cyan] {ep}  [dim]{trail}[/dim]")
        console.print(f"   {escape(r.text)}")
        if r.url:
            console.print(f"   [blue]{r.url}[/blue]")
        if r.links:
            console.print(f"   [dim]related: {escape(', '.join(r.links))}[/dim]")


def _open_first(doc: Any) -> None:
    """``--open``: the first answer sentence's moment, else the first result's."""
    import webbrowser

    urls = [a.url for a in doc.answer] + [r.url for r in doc.results]
    first = next((u for u in urls if u), None)
    if first is None:
        raise _fail("--open: no result has a moment to open")
    if not webbrowser.open(first):
        raise _fail(f"--open: no web browser could open {first}")


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
        return [run_eval(idx, questions, m, limit, kind, scope_audit) for m in modes]

    reports = _guard(go)
    if json_out:
        sys.stdout.write(json.dumps([r.to_dict() for r in reports], indent=2) + "\n")
    else:
        typer.echo(table(reports))


def _when(t: Any) -> str:
    if t is None:
        return "(no time)"
    return f"{'' if t.exact else '≈'}{t.label}"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
