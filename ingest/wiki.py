"""Wiki pages, in their Markdown form and as the plain-text export.

Both forms reduce to blocks (headings and paragraphs with their source
offsets); the blocks reduce to sentences, each with its verbatim span, its
readable text, its links and, when a citation follows it, its exact time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ingest import markup, sentences
from ingest.catalog import Catalog
from ingest.errors import DocumentError
from ingest.lines import LineIndex, line_spans
from ingest.records import Document, Episode, ParseIssue, Section, Sentence, Time


@dataclass(frozen=True, slots=True)
class Block:
    kind: str  # "heading" | "paragraph"
    start: int
    end: int
    level: int = 0  # heading depth (Markdown: number of #; plain text: 1)


_FROM = re.compile(r"^From:\s*(?:\[\[)?(?P<channel>[^\]<\s]+)")
# A line that only cites ("- **Reference**: [00:45:29] and [00:47:01]",
# "(Timecode: [00:17:58])", "[Source: [00:01:19]]", a bare citation): the
# citation of the sentence before it, not a sentence.  Read as sentences, 60 of
# them showed "Reference: and" or "." in results, the bare ones were dropped, and
# the claims they cite had no time: 267 on 68 of the shared pages.
_CITE_LABEL = re.compile(
    r"^(?:(?:references?|sources?|timecodes?|timestamps?|time|cited|citations?|and)"
    r"\b|[\s\W_])*$",
    re.IGNORECASE,
)


def _is_heading(line: str) -> bool:
    """The export loses the ``#``: a heading is a short line with no closing punctuation."""
    s = line.strip()
    words = s.split()
    return (
        0 < len(words) <= 12
        and len(s) <= 100
        and s[-1] not in '.!?:;,"”’)]'
        and s[0].isupper()
        and not markup.CITE_TEXT.search(s)
    )


def text_blocks(text: str) -> tuple[str | None, list[Block]]:
    channel = None
    blocks: list[Block] = []
    for i, (start, end) in enumerate(line_spans(text)):
        line = text[start:end]
        if not line.strip():
            continue
        if i == 0 and (m := _FROM.match(line)):
            channel = m["channel"]
            continue
        kind = "heading" if _is_heading(line) else "paragraph"
        blocks.append(Block(kind, start, end, 1 if kind == "heading" else 0))
    return channel, blocks


# ------------------------------------------------------------------ markdown

_FRONT = re.compile(r"\A---[ \t]*\r?\n(?P<body>.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
_KEY = re.compile(r"^(?P<key>[A-Za-z_][\w-]*)\s*:\s*(?P<value>.*?)\s*$", re.M)
_HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<text>.+?)\s*#*\s*$")
_ITEM = re.compile(r"^\s*(?:>\s*)*(?:[-*+]|\d+[.)])\s+")
_QUOTE = re.compile(r"^\s*(?:>\s*)+")
_RULE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,})\s*$")
# A line that is all bold ("**Benefits:**") is used as a minor heading in these
# pages; as a passage of its own it would match short questions on its words alone.
_CALLOUT_TITLE = re.compile(r"^\s*>\s*\[![A-Za-z]+\][+-]?\s+(?P<text>\S.{0,100}?)\s*$")
_BOLD_HEADING = re.compile(r"^\s*\*\*(?P<text>[^*\n]{1,100}?):?\*\*:?\s*$")


def front_matter(text: str) -> tuple[dict[str, str], int]:
    """The YAML front matter's flat ``key: value`` pairs, and where the body starts."""
    m = _FRONT.match(text)
    if not m:
        return {}, 0
    pairs = {k["key"]: k["value"].strip().strip("\"'") for k in _KEY.finditer(m["body"])}
    return pairs, m.end()


def markdown_blocks(text: str, body: int) -> tuple[str | None, list[Block]]:
    channel = None
    blocks: list[Block] = []
    para: list[tuple[int, int]] = []

    def flush() -> None:
        if para:
            blocks.append(Block("paragraph", para[0][0], para[-1][1]))
            para.clear()

    for start, end in line_spans(text[body:]):
        start, end = start + body, end + body
        line = text[start:end]
        if not line.strip() or _RULE.match(line):
            flush()
            continue
        if channel is None and not blocks and not para and (m := _FROM.match(line)):
            channel = m["channel"]
            continue
        if m := _HEADING.match(line):
            flush()
            hs = start + m.start("text")
            blocks.append(Block("heading", hs, start + m.end("text"), len(m["hashes"])))
            continue
        if m := _BOLD_HEADING.match(line):
            flush()
            blocks.append(Block("heading", start + m.start("text"), start + m.end("text"), 7))
            continue
        if m := _CALLOUT_TITLE.match(line):
            # "> [!info] Title" opens a callout: its title reads as a minor heading.
            flush()
            blocks.append(Block("heading", start + m.start("text"), start + m.end("text"), 7))
            continue
        if _ITEM.match(line) or _QUOTE.match(line):
            # A list item or quote line stands alone: its own sentences, never
            # glued to the line before.
            flush()
            lead = _ITEM.match(line) or _QUOTE.match(line)
            assert lead is not None
            para.append((start + lead.end(), end))
            flush()
            continue
        para.append((start, end))
    flush()
    return channel, blocks


# ------------------------------------------------------------------- shared


def _title_from_path(path: Path, channel: str | None) -> str:
    stem = path.stem
    if channel and stem.lower().startswith(channel.lower() + "-"):
        stem = stem[len(channel) + 1 :]
    words = re.sub(r"[-_]+", " ", stem).strip()
    return words[:1].upper() + words[1:]


def _sections(
    path: str,
    text: str,
    blocks: list[Block],
    clean: Callable[[str], markup.Cleaned],
    trailer: str,
    issues: list[ParseIssue],
) -> tuple[Section, ...]:
    lines = LineIndex(text)
    out: list[Section] = []
    trail: list[tuple[int, str]] = []  # (level, heading)
    current: list[Sentence] = []
    paragraphs: list[int] = []

    def close() -> None:
        if current:
            out.append(Section(tuple(h for _, h in trail), tuple(current), tuple(paragraphs)))
        current.clear()
        paragraphs.clear()

    for block in blocks:
        raw = text[block.start : block.end]
        if block.kind == "heading":
            close()
            heading = clean(raw).text or raw.strip()
            while trail and trail[-1][0] >= block.level:
                trail.pop()
            trail.append((block.level, heading))
            continue
        paragraphs.append(len(current))
        for s, e in sentences.split(raw, block.start, trailer):
            cleaned = clean(text[s:e])
            time = None
            for c in cleaned.citations:
                line = lines.line(s + c.offset)
                if c.seconds is None:
                    issues.append(
                        ParseIssue(path, line, f"malformed citation {c.raw.strip()!r} dropped")
                    )
                elif time is None:
                    time = Time(float(c.seconds), exact=True)
            if cleaned.citations and current and _CITE_LABEL.match(cleaned.text):
                # The sentence before takes the citation, and its span reaches
                # over it, so its time is still found in its verbatim text.
                before = current[-1]
                current[-1] = replace(before, end=e, time=before.time or time)
                continue
            if not cleaned.text:
                continue
            current.append(Sentence(s, e, cleaned.text, time, None, cleaned.links, lines.line(s)))
    close()
    return tuple(out)


def parse_text(path: Path, doc_id: str, text: str, sha: str, catalog: Catalog) -> Document:
    channel, blocks = text_blocks(text)
    if not any(b.kind == "paragraph" for b in blocks):
        raise DocumentError(str(path), 1, "no text to index")
    issues: list[ParseIssue] = []
    secs = _sections(str(path), text, blocks, markup.clean_plain, markup.TRAILER_TEXT, issues)
    episode = catalog.for_file(path)
    return Document(
        id=doc_id,
        path=str(path),
        title=_title_from_path(path, channel),
        kind="wiki",
        channel=channel or (episode.channel if episode else None),
        episode=_with_channel(episode, channel),
        sections=secs,
        sha256=sha,
        issues=tuple(issues),
    )


def parse_markdown(path: Path, doc_id: str, text: str, sha: str, catalog: Catalog) -> Document:
    meta, body = front_matter(text)
    channel, blocks = markdown_blocks(text, body)
    if not any(b.kind == "paragraph" for b in blocks):
        raise DocumentError(str(path), LineIndex(text).line(body), "no text to index")
    issues: list[ParseIssue] = []
    secs = _sections(str(path), text, blocks, markup.clean_markdown, markup.TRAILER_MD, issues)
    video = meta.get("videoId") or meta.get("video_id")
    episode = catalog.episode(video) if video else catalog.for_file(path)
    if video and episode is None:
        # Front matter wins: we know the video even if no catalog names it.
        episode = Episode(id=video, title=meta.get("title") or video)
    return Document(
        id=doc_id,
        path=str(path),
        title=meta.get("title") or _title_from_path(path, channel),
        kind="wiki",
        channel=channel or (episode.channel if episode else None),
        episode=_with_channel(episode, channel),
        sections=secs,
        sha256=sha,
        issues=tuple(issues),
    )


def _with_channel(episode: Episode | None, channel: str | None) -> Episode | None:
    if episode is None or episode.channel or not channel:
        return episode
    return Episode(episode.id, episode.title, episode.date, channel, episode.number)
