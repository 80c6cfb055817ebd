"""``podcite ingest``'s work: read (feeds, audio, files), build, report.

What the command does between its arguments and its summary line, kept apart
from server/cli.py so that module stays the list of commands.  Heavy modules
(the model, FAISS, faster-whisper) are imported inside the functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.settings import Settings

if TYPE_CHECKING:
    from index import BuildReport
    from ingest.loader import Known
    from ingest.podcast import Media
    from server.progress import Stages


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

    from index import build
    from index.errors import BuildError, MustParse
    from ingest import load
    from server.progress import Stages
    from server.runtime import ingest_embedder as make_embedder
    from server.runtime import publisher, sources, target

    console = Console(stderr=True, quiet=quiet, soft_wrap=True)  # a log's lines whole
    t0 = time.perf_counter()
    with Stages(console) as stages:

        def stage(name: str, unit: str) -> Callable[[int, int], None]:
            return lambda done, total: stages.update(name, done, total, unit)

        writing = stage("writing", "rows" if settings.backend == "milvus" else "steps")
        embedder = make_embedder(settings)
        # Documents the index parsed from the same file and catalogs are not
        # parsed again (ingest/loader.py); should the index fail to give them
        # back (MustParse: it fails verification), everything is parsed.
        known = None if replace or ray is not None else _known(settings, embedder.name)
        while True:
            if ray is None:
                media = _media(settings, stages)
                parsing = stage("parsing", "documents")
                loaded = load(paths, feeds, media, progress=parsing, known=known)
                stages.finish("parsing")
                if media.transcripts:
                    console.print(_transcribed_summary(media), highlight=False)
                how: dict[str, Any] = {"publish": publisher(settings, writing)}
                how |= {"unchanged": loaded.unchanged, "fingerprint": loaded.fingerprint}
            else:  # feeds and audio are read in process only (docs/scale.md)
                if feeds:
                    raise BuildError("--ray reads files and folders; ingest feeds without --ray")
                console.print(f"parsing and embedding on Ray ({ray})", highlight=False)
                # where to publish, and the vectors Ray computed (Ray shows its own progress)
                loaded, how = sources(paths, settings, ray, writing)
            try:
                report = build(
                    loaded.documents,
                    settings.index_dir,
                    embedder,
                    errors=loaded.errors,
                    strict=strict,
                    catalog_files=loaded.catalog_files,
                    progress=stage("embedding", "passages"),
                    roots=[p for p in paths if p.is_dir()],
                    prune=prune,
                    replace=replace,
                    **how,
                )  # leaving Stages ends the last stages (a new stage ends the one before)
            except MustParse:
                if known is None:
                    raise
                known = None
                continue
            break
    for line in report.errors:
        console.print(f"[red]skipped[/red] {line}", highlight=False)
    for line in report.warnings[:20]:
        console.print(f"[yellow]warning[/yellow] {line}", highlight=False)
    if len(report.warnings) > 20:
        console.print(f"[yellow]… and {len(report.warnings) - 20} more warnings (see the manifest)")
    for line in report.notes[:20]:
        console.print(f"[dim]note[/dim] {line}", highlight=False)
    if len(report.notes) > 20:
        console.print(f"[dim]… and {len(report.notes) - 20} more notes (see the manifest)")
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
        f"{len(report.errors)} errors (skipped), {len(report.warnings)} warnings, "
        f"{len(report.notes)} notes, "
        f"{seconds:.1f} s -> {target(settings)}",
        highlight=False,
    )
    return report


def _known(settings: Settings, model: str) -> Known | None:
    """What the index at ``settings.index_dir`` parsed (``ingest.loader.Known``):
    documents whose manifest entry keeps what carrying them over needs."""
    from index import carry, store
    from ingest.errors import PodciteError
    from ingest.loader import Known

    if settings.backend != "faiss":
        return None
    try:
        manifest = store.read_manifest(settings.index_dir)
    except PodciteError:
        return None
    if manifest.get("model", {}).get("name") != model:
        return None
    return Known(
        {
            doc_id: (str(e.get("sha256")), str(e["parsed_with"]))
            for doc_id, e in manifest.get("documents", {}).items()
            if e.get("parsed_with") and carry.knows([e])
        }
    )


def _media(settings: Settings, stages: Stages) -> Media:
    """Feeds' and audio's cache beside the index, with their stages: bytes for
    downloads, audio time for transcription (``12:40 / 2:01:33, 9.8× real time``)."""
    from ingest.audio import Transcriber
    from ingest.clock import format_clock
    from ingest.podcast import Media, cache_dir_for

    def downloaded(url: str, done: int, total: int | None) -> None:
        name = f"downloading {url.rsplit('/', 1)[-1][:40]}"
        stages.update(name, round(done / 1e6, 1), total and round(total / 1e6, 1), "MB")
        if total is not None and done >= total:
            stages.finish(name)

    def transcribing(name: str, done: float, total: float, wall: float) -> None:
        speed = f"{done / wall:.1f}× real time" if wall > 0 else ""
        stage = f"transcribing {name[:40]}"
        stages.update(stage, round(done), round(total), "s of audio", speed)
        if done >= total:
            stages.finish(stage, f"{format_clock(total)} of audio, {speed}")

    return Media(
        cache_dir=cache_dir_for(settings.index_dir),
        transcriber=Transcriber(settings.whisper_model_dir),
        on_download=downloaded,
        on_transcribe=transcribing,
    )


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
