"""From paths on disk to Documents: discovery, catalogs first, then each file.

One bad file never costs the others: its error is collected and the rest are
parsed (the caller decides whether ``--strict`` turns that into a failure).
Audio files and podcast feeds (paths or URLs) are read last, through
ingest/podcast.py: they are slow (downloads, transcription), and a catalog
read first may name their episodes.

A rebuild need not parse what it parsed before: given ``Known`` (the previous
build's documents, each with its file's hash and the ``fingerprint`` of the
catalogs and parser it was parsed with), a text document whose file and
catalogs are unchanged is listed in ``Loaded.unchanged`` instead of parsed, and
the build carries its rows over as they are.  Parsing is a third of a
no-change re-ingest of the whole library; its result is a function of exactly
those inputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ingest import catalog as catalogs
from ingest import wiki
from ingest.audio import AUDIO_SUFFIXES
from ingest.catalog import Catalog
from ingest.errors import DocumentError, MediaError, UnsupportedDocument
from ingest.feed import FEED_SUFFIXES, looks_like_feed
from ingest.lines import read_text
from ingest.records import Document

if TYPE_CHECKING:
    from ingest.podcast import Media, ReadFeed

WIKI_SUFFIXES = {".txt", ".md", ".markdown"}
TRANSCRIPT_SUFFIXES = {".vtt", ".srt"}
CATALOG_SUFFIXES = {".csv"}
SUFFIXES = WIKI_SUFFIXES | TRANSCRIPT_SUFFIXES | CATALOG_SUFFIXES | AUDIO_SUFFIXES | FEED_SUFFIXES
# Bump when a parser's output changes for the same file, or the passages cut
# from it (ingest/chunking.py) or the keyword text made of them
# (index/keyword.py, ``passage_text``): documents parsed by an older parser are
# then parsed again rather than carried over, their tokens with them.  2: a
# lead-in joins what it introduces; 3: a wiki passage's keyword text names its
# episode; 4: Markdown pages' citations written as text ("[00:06:00]"); 5: a
# line that only cites is the citation of the sentence before it; 6: citations
# in parentheses ("(00:40:53)"), no brackets or commas left by a list of them,
# and "[[words with spaces]]" read as words; 7: a link's words that repeat its
# sentence's are not shown twice, and Markdown escapes ("\[", "\<a") read; 8:
# single-bracket links and bare slugs read as words, no ":." left by a citation.
PARSER_VERSION = 8


@dataclass(frozen=True, slots=True)
class Source:
    path: Path
    doc_id: str  # the path relative to the root it was found under


@dataclass(frozen=True, slots=True)
class Unchanged:
    """A document given again whose file and catalogs are as the previous build
    parsed them: not parsed now, its rows carried over."""

    id: str
    path: str
    sha256: str


@dataclass(frozen=True)
class Known:
    """What the previous build parsed: per document id, the file's sha256 and the
    fingerprint it was parsed with (``Loaded.fingerprint``)."""

    documents: Mapping[str, tuple[str, str]]


@dataclass
class Loaded:
    documents: list[Document] = field(default_factory=list)
    errors: list[DocumentError] = field(default_factory=list)
    catalog: Catalog = field(default_factory=Catalog)
    catalog_files: list[Path] = field(default_factory=list)
    media: Media | None = None  # what feeds and audio used: its transcripts, for the summary
    unchanged: list[Unchanged] = field(default_factory=list)
    # What a text document's parse depends on besides its own file: the parser
    # version and the catalogs' contents in the order they were merged (None
    # with feeds: a feed's catalog can change without a file changing).
    fingerprint: str | None = None


def discover(paths: Iterable[Path]) -> tuple[list[Source], list[DocumentError]]:
    """Files to ingest under ``paths``; a named file of unknown type is an error,
    unknown files inside a folder are passed over (READMEs, images)."""
    found: list[Source] = []
    errors: list[DocumentError] = []
    for root in paths:
        if root.is_dir():
            for p in sorted(root.rglob("*")):
                rel = p.relative_to(root)
                if p.is_file() and p.suffix.lower() in SUFFIXES and not _hidden(rel):
                    if p.suffix.lower() in FEED_SUFFIXES and not _sniff_feed(p):
                        continue  # some other XML file in the folder
                    found.append(Source(p, rel.as_posix()))
        elif root.is_file():
            if root.suffix.lower() in SUFFIXES:
                found.append(Source(root, root.name))
            else:
                errors.append(
                    UnsupportedDocument(str(root), 0, f"unsupported file type {root.suffix!r}")
                )
        else:
            errors.append(DocumentError(str(root), 0, "no such file or directory"))
    return found, errors


# Files in a folder that are about the folder, not documents of the library.
_NOT_DOCUMENTS = ("license", "licence", "readme", "copying", "notice", "changelog")


def _sniff_feed(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return looks_like_feed(fh.read(4096))
    except OSError:
        return True  # let reading it say what is wrong


def _hidden(rel: Path) -> bool:
    if rel.name.lower().startswith(_NOT_DOCUMENTS):
        return True
    return any(part.startswith(".") for part in rel.parts)


def parse(path: Path, doc_id: str | None = None, catalog: Catalog | None = None) -> Document:
    """Parse one document.  Raises DocumentError when it cannot be read at all."""
    text, sha = read_text(path)
    return _parse(path, doc_id or path.name, text, sha, catalog or Catalog())


def _parse(path: Path, doc_id: str, text: str, sha: str, catalog: Catalog) -> Document:
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return wiki.parse_text(path, doc_id, text, sha, catalog)
    if suffix in {".md", ".markdown"}:
        return wiki.parse_markdown(path, doc_id, text, sha, catalog)
    if suffix in TRANSCRIPT_SUFFIXES:
        from ingest.transcript import parse_transcript

        return parse_transcript(path, doc_id, text, catalog)
    raise UnsupportedDocument(str(path), 0, f"unsupported file type {path.suffix!r}")


def load(
    paths: Iterable[Path],
    feeds: Iterable[str] = (),
    media: Media | None = None,
    progress: Callable[[int, int], None] | None = None,
    known: Known | None = None,
) -> Loaded:
    """Read catalogs (CSV files and wiki channel pages) first, then every
    document, then audio files and feeds (``feeds``: URLs or paths, besides the
    feed files among ``paths``).  ``media`` holds the download and transcript
    cache and the transcriber (default: ``data/index.cache``, tiny.en);
    ``progress(done, total)`` counts the text documents parsed.  With ``known``,
    documents the previous build parsed from the same file and catalogs are
    listed in ``unchanged``, not parsed (see the module docstring)."""
    out = Loaded()
    sources, out.errors = discover(paths)
    documents: list[tuple[Source, str, str]] = []  # each file is read once
    audio: list[Source] = []
    feed_sources = list(feeds)
    catalog_shas: list[str] = []
    for src in sources:
        suffix = src.path.suffix.lower()
        if suffix in AUDIO_SUFFIXES:
            audio.append(src)
            continue
        if suffix in FEED_SUFFIXES:
            feed_sources.append(str(src.path))
            continue
        try:
            if suffix in CATALOG_SUFFIXES:
                out.catalog.merge(catalogs.read_csv(src.path))
                out.catalog_files.append(src.path)
                catalog_shas.append(_sha256(src.path))
                continue
            text, sha = read_text(src.path)
            if suffix in {".md", ".markdown"} and _channel_page(text):
                out.catalog.merge(catalogs.read_channel_page(src.path, text))
                out.catalog_files.append(src.path)
                catalog_shas.append(sha)
            else:
                documents.append((src, text, sha))
        except DocumentError as exc:
            out.errors.append(exc)
    if not feed_sources:
        out.fingerprint = fingerprint(catalog_shas)
    if known is not None and out.fingerprint is not None:
        documents = _parse_only_changed(documents, known, out)
    read = []
    if audio or feed_sources:
        from ingest import podcast

        out.media = media = media or podcast.Media()
        # Feeds are catalogs too (a YouTube channel's names its videos): read
        # before the documents are parsed; their audio is transcribed last.
        read = [podcast.read_feed(source, media) for source in feed_sources]
        for r in read:
            out.catalog.merge(r.catalog)
    for done, (src, text, sha) in enumerate(documents, 1):
        try:
            out.documents.append(_parse(src.path, src.doc_id, text, sha, out.catalog))
        except DocumentError as exc:
            out.errors.append(exc)
        if progress is not None:
            progress(done, len(documents))
    if out.media is not None:
        _load_media(out, audio, read, out.media)
    return out


def fingerprint(catalog_shas: Iterable[str]) -> str:
    """What a text document's parse depends on besides its file (``Loaded.fingerprint``)."""
    key = "\n".join([f"parser {PARSER_VERSION}", *catalog_shas])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise DocumentError(str(path), 0, f"cannot read: {exc.strerror or exc}") from exc


def _parse_only_changed(
    documents: list[tuple[Source, str, str]], known: Known, out: Loaded
) -> list[tuple[Source, str, str]]:
    """The documents to parse; the others go to ``out.unchanged``."""
    todo = []
    for src, text, sha in documents:
        if known.documents.get(src.doc_id) == (sha, out.fingerprint):
            out.unchanged.append(Unchanged(src.doc_id, str(src.path), sha))
        else:
            todo.append((src, text, sha))
    return todo


def _load_media(out: Loaded, audio: list[Source], feeds: list[ReadFeed], media: Media) -> None:
    from ingest import podcast

    for src in audio:
        try:
            out.documents.append(podcast.audio_document(src.path, src.doc_id, media, out.catalog))
        except DocumentError as exc:
            out.errors.append(exc)
    ids = {d.id: d.path for d in out.documents}
    for r in feeds:
        got = podcast.feed_documents(r, media)
        out.errors.extend(got.errors)
        source = r.feed.where if r.feed else ""
        for doc in got.documents:
            if doc.id in ids:  # the same guid twice: two feeds of one show, or one feed twice
                out.errors.append(MediaError(source, f"{doc.id} is indexed already"))
                continue
            ids[doc.id] = doc.path
            out.documents.append(doc)


def _channel_page(text: str) -> bool:
    meta, _ = wiki.front_matter(text)
    return "videoId" not in meta and catalogs.is_channel_page(text)
