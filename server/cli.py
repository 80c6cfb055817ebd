"""The ``podcite`` command: ingest, serve, ask (and eval).

Heavy modules (torch through the embedder, faiss, the web app) are imported
inside the commands, so ``podcite --help`` answers at once.  Domain errors
become one line on stderr and exit code 1 here, and only here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ingest.errors import PodciteError
from ingest.records import KINDS
from server.settings import Settings

if TYPE_CHECKING:
    from index import BuildReport

app = typer.Typer(
    name="podcite",
    help="Ask questions of a podcast library; answers cite the moment of the episode.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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
    paths: list[Path], settings: Settings, strict: bool, quiet: bool = False, ray: str | None = None
) -> BuildReport:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from index import build
    from server.runtime import embedder as make_embedder
    from server.runtime import sources, target

    console = Console(stderr=True, quiet=quiet)
    t0 = time.perf_counter()
    doing = "reading documents" if ray is None else f"parsing and embedding on Ray ({ray})"
    with console.status(doing):
        loaded, how = sources(paths, settings, ray)  # how: where to publish, vectors from Ray
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
            **how,
        )
    for line in report.errors:
        console.print(f"[red]skipped[/red] {line}", highlight=False)
    for line in report.warnings[:20]:
        console.print(f"[yellow]warning[/yellow] {line}", highlight=False)
    if len(report.warnings) > 20:
        console.print(f"[yellow]… and {len(report.warnings) - 20} more warnings (see the manifest)")
    seconds = time.perf_counter() - t0
    console.print(
        f"indexed {report.documents} documents, {report.passages} passages "
        f"({report.embedded} embedded, {report.reused} reused), "
        f"{len(report.warnings)} warnings, {len(report.errors)} skipped, "
        f"{seconds:.1f} s -> {target(settings)}",
        highlight=False,
    )
    return report


@app.command()
def ingest(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files and folders to index [default: corpus/].")
    ] = None,
    index: IndexOpt = None,
    strict: Annotated[bool, typer.Option(help="Fail the whole build on any bad document.")] = False,
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
    """Parse documents, embed their passages, and publish a new index atomically."""
    settings = _settings(index)
    _guard(lambda: do_ingest(paths or [settings.corpus_dir], settings, strict, ray=ray))


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

    settings = _settings(index, host=host, port=port)
    if settings.backend == "faiss" and not settings.index_dir.exists():
        typer.echo(
            f"no index at {settings.index_dir}; building one from {settings.corpus_dir}", err=True
        )
        _guard(lambda: do_ingest([settings.corpus_dir], settings, strict=False))
    application = create_app(settings)
    try:
        uvicorn.run(application, host=settings.host, port=settings.port, log_level="info")
    except PodciteError as exc:  # raised from the app's startup (a broken index)
        raise _fail(str(exc)) from None


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in plain words.")],
    index: IndexOpt = None,
    k: Annotated[int, typer.Option("-k", help="How many passages to show.")] = 5,
    json_out: Annotated[bool, typer.Option("--json", help="Print the /api/ask JSON.")] = False,
) -> None:
    """Answer a question in the terminal: cited sentences, then the passages."""
    from index.query import parse, run
    from server.runtime import open_for_queries
    from server.schemas import ask_response

    settings = _settings(index)
    params = _guard(lambda: parse({"q": question, "k": k}))  # checked before the model loads
    out = _guard(lambda: run(open_for_queries(settings), params, True, settings.query_options()))
    doc = ask_response(out)
    answer, results = doc.answer, doc.results
    if json_out:
        sys.stdout.write(doc.model_dump_json(indent=2) + "\n")
        return
    from rich.console import Console

    console = Console(highlight=False)
    console.print(f"[bold]{out.query}[/bold]")
    if out.abstained:
        console.print(
            "\nNothing in the library answers this; the nearest passages are weak matches."
        )
    if answer:
        console.print("\n[bold]Answer[/bold] (from the sources, word for word)")
        for a in answer:
            when = _when(a.timestamp)
            console.print(f"  • {a.text} [cyan]{when}[/cyan] {a.url or ''}")
    console.print(f"\n[bold]{len(results)} passages[/bold] ({out.took_ms:.0f} ms)")
    for r in results:
        ep = r.episode.title if r.episode else "episode unknown"
        trail = " › ".join([r.document.title, *r.section])
        console.print(
            f"\n[bold]{r.rank}.[/bold] [cyan]{_when(r.timestamp)}[/cyan] {ep}  [dim]{trail}[/dim]"
        )
        console.print(f"   {r.text}")
        if r.url:
            console.print(f"   [blue]{r.url}[/blue]")
        if r.links:
            console.print(f"   [dim]related: {', '.join(r.links)}[/dim]")


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
