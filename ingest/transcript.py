"""Transcripts (WebVTT, SRT) -> sentences that carry the time of their cue.

The cue texts are joined into one readable string, split into sentences, and
every sentence is mapped back to the raw file: its offsets are those of its
first and last characters in the file, its time the start of the cue where it
begins (exact), its ``end_time`` the end of the cue where it ends.

Parsed by hand rather than with webvtt-py or srt: neither reports where a cue
sits in the file (character offsets, line numbers), which every sentence needs;
webvtt-py silently drops a malformed cue and ``srt.parse`` raises on one (or
skips it silently), where we want to keep the file and say which line we
dropped; and webvtt-py takes ~8 s on the 92 shared transcripts.  Both formats
are "blank-line separated blocks of [id] / timing / text", so one reader serves.
"""

from __future__ import annotations

import hashlib
import html
import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ingest import sentences as splitter
from ingest.catalog import Catalog
from ingest.clock import cue_seconds, format_cue
from ingest.errors import DocumentError, UnsupportedDocument
from ingest.lines import LineIndex, split_lines
from ingest.records import Document, ParseIssue, Section, Sentence, Time

# Whisper runs sentences on for minutes without a period; a citation into such
# a "sentence" would be vague, so one is cut at a cue boundary (keeping exact
# cue times) once it passes either limit.  A single cue is never cut.
MAX_SENTENCE_WORDS = 40
MAX_SENTENCE_SECONDS = 30.0
# A broken file could report thousands of repairs; past this, one summary line.
MAX_ISSUES = 20

# Lenient on purpose: Whisper writes ``MM:SS.mmm`` under an hour and
# ``H:MM:SS.mmm`` after it (the spec wants two hour digits); SRT uses a comma.
_TS = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})"
_TIMING = re.compile(rf"^\s*{_TS}[ \t]+-->[ \t]+{_TS}(?:[ \t].*)?$")
_VTT_HEADER = re.compile(r"^\ufeff?WEBVTT(?:[ \t].*)?$")
_VTT_OTHER = re.compile(r"^(?:NOTE|STYLE|REGION)(?:[ \t]|$)")  # blocks that are not cues
_VTT_MARKUP = re.compile(r"<[^>]*>|&(?:[A-Za-z]+|#\d+|#[xX][0-9A-Fa-f]+);")
_SRT_MARKUP = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # <i>, <font ...>, {\an8}
_TITLE_NOISE = re.compile(r"\s*[｜|]\s*Huberman Lab(?: Podcast)?(?:\s*#\d+)?\s*$")


@dataclass(slots=True)
class _Cue:
    start: float
    end: float
    line: int  # 1-based line of the timing line
    timing: str  # that line, for messages
    text_lines: list[int]  # indexes into the file's lines
    text_from: int = 0  # span of its text in the joined string
    text_to: int = 0


def _capped(path: str, issues: list[ParseIssue]) -> tuple[ParseIssue, ...]:
    issues = sorted(issues, key=lambda i: i.line)  # file order, not the order of passes
    if len(issues) <= MAX_ISSUES:
        return tuple(issues)
    more = f"{len(issues) - MAX_ISSUES} more issues like these, repaired the same way"
    return (*issues[:MAX_ISSUES], ParseIssue(path, 0, more))


def parse_transcript(path: Path, doc_id: str, text: str, catalog: Catalog) -> Document:
    """Parse a ``.vtt`` or ``.srt`` file whose content (read with ``newline=""``) is ``text``."""
    where = str(path)
    kind = path.suffix.lower()
    if kind not in (".vtt", ".srt"):
        raise UnsupportedDocument(where, 0, "not a transcript (.vtt or .srt)")
    if not text.strip():
        raise DocumentError(where, 1, "empty file: no cues")
    episode = catalog.for_file(path)
    issues: list[ParseIssue] = []
    if episode is None:
        issues.append(
            ParseIssue(where, 1, "no catalog entry: indexed without episode link", note=True)
        )
    starts, lines = split_lines(text)
    read = _read_cues(where, lines, kind == ".srt", issues)
    cues = _repair(where, read, issues)
    joined, pieces = _join(cues, starts, lines, _SRT_MARKUP if kind == ".srt" else _VTT_MARKUP)
    if not cues:
        raise DocumentError(
            where, read[0].line, "no cue with text and sane times: nothing to index"
        )
    found = _sentences(joined, pieces, cues, starts)
    return Document(
        id=doc_id,
        path=where,
        title=episode.title if episode else _title_from_name(path),
        kind="transcript",
        channel=episode.channel if episode else None,
        episode=episode,
        sections=(Section(trail=(), sentences=tuple(found)),),
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        issues=_capped(where, issues),
    )


def _title_from_name(path: Path) -> str:
    """'X ｜ Huberman Lab Podcast #37.mp3.vtt' -> 'X' (the yt-dlp/Whisper naming)."""
    stem = path.stem
    if stem.lower().endswith(".mp3"):
        stem = stem[:-4]
    return _TITLE_NOISE.sub("", stem).strip() or path.stem


def _blocks(lines: list[str]) -> list[list[int]]:
    """Runs of non-blank lines, as line indexes (a plain loop: twice groupby's speed)."""
    blocks: list[list[int]] = []
    block: list[int] = []
    for i, line in enumerate(lines):
        if line.strip():
            block.append(i)
        elif block:
            blocks.append(block)
            block = []
    if block:
        blocks.append(block)
    return blocks


def _read_cues(where: str, lines: list[str], is_srt: bool, issues: list[ParseIssue]) -> list[_Cue]:
    blocks = _blocks(lines)
    if is_srt:
        first = blocks[0]
        if not any("-->" in lines[i] for i in first[:2]):
            raise DocumentError(
                where, first[0] + 1, "not an SRT file: expected a cue number and 'start --> end'"
            )
    else:
        if not lines or not _VTT_HEADER.match(lines[0]):
            raise DocumentError(where, 1, "not a WebVTT file: the first line must be 'WEBVTT'")
        header = blocks.pop(0)
        # No blank line after the header: the first cue is glued to it.
        glued = next((k for k, i in enumerate(header) if "-->" in lines[i]), None)
        if glued is not None:
            blocks.insert(0, header[glued:])
        if not blocks:
            raise DocumentError(where, len(lines), "empty transcript: no cues after the header")

    cues: list[_Cue] = []
    for block in blocks:
        head = lines[block[0]]
        # The timing line comes first, or second after a cue id / SRT number.
        if "-->" in head:
            at = 0
        elif len(block) > 1 and "-->" in lines[block[1]]:
            at = 1
        elif not is_srt and _VTT_OTHER.match(head):
            continue
        else:
            issues.append(ParseIssue(where, block[0] + 1, "no 'start --> end' line: block dropped"))
            continue
        timing = block[at]
        m = _TIMING.match(lines[timing])
        start = cue_seconds(*m.groups()[:4]) if m else None
        end = cue_seconds(*m.groups()[4:]) if m else None
        if start is None or end is None:
            bad = f"unparsable cue timing {lines[timing].strip()!r}: cue dropped"
            issues.append(ParseIssue(where, timing + 1, bad))
            continue
        cues.append(_Cue(start, end, timing + 1, lines[timing].strip(), block[at + 1 :]))
    if not cues:
        raise DocumentError(where, blocks[0][0] + 1, "no parsable cue")
    return cues


def _repair(where: str, cues: list[_Cue], issues: list[ParseIssue]) -> list[_Cue]:
    """Keep cue times monotonic so every sentence time is a real, ordered cue start."""
    kept: list[_Cue] = []
    for cue in cues:
        prev = kept[-1] if kept else None
        if cue.end < cue.start:
            problem = f"cue ends before it starts ({cue.timing}): cue dropped"
        elif prev is not None and cue.start < prev.start:
            after = format_cue(prev.start)
            problem = f"time goes backwards ({cue.timing} after {after}): cue dropped"
        elif prev is not None and cue.start < prev.end:
            problem = (
                f"cue overlaps the previous one ({cue.timing}, "
                f"previous ends {format_cue(prev.end)}): "
                f"previous cue's end clamped to {format_cue(cue.start)}"
            )
            prev.end = cue.start
            kept.append(cue)
        else:
            kept.append(cue)
            continue
        issues.append(ParseIssue(where, cue.line, problem))
    return kept


# A piece of the joined string: (joined start, raw start, joined length, raw length).
# Equal lengths mean verbatim text, mapped char by char; otherwise (an entity
# such as "&amp;") the piece maps as a whole.
_Piece = tuple[int, int, int, int]


def _join(
    cues: list[_Cue], starts: list[int], lines: list[str], markup: re.Pattern[str]
) -> tuple[str, list[_Piece]]:
    """Join cue texts with single spaces, dropping cues without text (in place)."""
    parts: list[str] = []
    pieces: list[_Piece] = []
    pos = 0
    kept: list[_Cue] = []
    for cue in cues:
        segs = _cue_segments(cue, starts, lines, markup)
        if not "".join(s[1] for s in segs).strip():
            continue  # an empty cue has nothing to cite
        if parts:
            parts.append(" ")
            pos += 1
        cue.text_from = pos
        for n, (line_start, readable, raw, raw_len) in enumerate(segs):
            if n and line_start:  # the lines of a cue join with a space too
                parts.append(" ")
                pos += 1
            parts.append(readable)
            pieces.append((pos, raw, len(readable), raw_len))
            pos += len(readable)
        cue.text_to = pos
        kept.append(cue)
    cues[:] = kept
    return "".join(parts), pieces


def _cue_segments(
    cue: _Cue, starts: list[int], lines: list[str], markup: re.Pattern[str]
) -> list[tuple[bool, str, int, int]]:
    """(first of its line?, readable text, raw offset, raw length) of a cue's text."""
    if len(cue.text_lines) == 1:  # fast path: Whisper writes one plain line per cue
        line = lines[cue.text_lines[0]]
        body = line.strip()
        if body and "<" not in body and "&" not in body and "{" not in body:
            skip = len(line) - len(line.lstrip())
            return [(True, body, starts[cue.text_lines[0]] + skip, len(body))]
    return [
        (n == 0, *seg)
        for i in cue.text_lines
        for n, seg in enumerate(_segments(lines[i], starts[i], markup))
    ]


def _segments(line: str, offset: int, markup: re.Pattern[str]) -> Iterator[tuple[str, int, int]]:
    """(readable text, raw offset, raw length) of a cue text line, tags removed."""
    body = line.strip()
    offset += len(line) - len(line.lstrip())
    pos = 0
    for m in markup.finditer(body):
        if m.start() > pos:
            yield body[pos : m.start()], offset + pos, m.start() - pos
        if m.group().startswith("&"):
            yield html.unescape(m.group()), offset + m.start(), len(m.group())
        pos = m.end()
    if pos < len(body):
        yield body[pos:], offset + pos, len(body) - pos


def _sentences(
    joined: str, pieces: list[_Piece], cues: list[_Cue], line_starts: list[int]
) -> list[Sentence]:
    piece_at = [p[0] for p in pieces]
    cue_at = [c.text_from for c in cues]
    lines = LineIndex(starts=line_starts)

    def raw_offset(j: int, last: bool) -> int:
        jstart, raw, jlen, rlen = pieces[bisect_right(piece_at, j) - 1]
        if jlen == rlen:
            return raw + (j - jstart) + (1 if last else 0)
        return raw + rlen if last else raw

    def make(a: int, b: int) -> Sentence | None:
        while a < b and joined[a].isspace():
            a += 1
        while b > a and joined[b - 1].isspace():
            b -= 1
        if a == b:
            return None
        start = raw_offset(a, last=False)
        return Sentence(
            start=start,
            end=raw_offset(b - 1, last=True),
            text=" ".join(joined[a:b].split()),
            time=Time(cues[bisect_right(cue_at, a) - 1].start, exact=True),
            end_time=cues[bisect_right(cue_at, b - 1) - 1].end,
            line=lines.line(start),
        )

    out: list[Sentence] = []
    for a, b in splitter.split(joined, long=False):
        for lo, hi in _cap(joined, cues, bisect_right(cue_at, a) - 1, a, b):
            for lo2, hi2 in splitter.cut(joined, lo, hi):  # a run-on single cue, read whole
                sentence = make(lo2, hi2)
                if sentence is not None:
                    out.append(sentence)
    return out


def _cap(joined: str, cues: list[_Cue], first: int, a: int, b: int) -> Iterator[tuple[int, int]]:
    """Cut the sentence ``joined[a:b]`` (beginning in cue ``first``) at cue boundaries."""
    lo, head, words = a, first, 0
    k = first
    while k < len(cues) and cues[k].text_from < b:
        cue = cues[k]
        n = len(joined[max(a, cue.text_from) : min(b, cue.text_to)].split())
        too_long = words + n > MAX_SENTENCE_WORDS
        if k > head and (too_long or cue.end - cues[head].start > MAX_SENTENCE_SECONDS):
            yield lo, cues[k - 1].text_to
            lo, head, words = cue.text_from, k, 0
        words += n
        k += 1
    yield lo, b
