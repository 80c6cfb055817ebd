"""``podcite ingest``'s work: read (feeds, audio, files), build, report.

What the command does between its arguments and its summary line, kept apart
from server/cli.py so that module stays the list of commands.  Heavy modules
(the model, FAISS, faster-whisper) are imported inside the functions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.settings import Settings

if TYPE_CHECKING:
    from index import BuildReport
    from ingest.podcast import Media


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
