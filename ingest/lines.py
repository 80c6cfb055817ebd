"""A source file's text, its lines, and offsets -> line numbers: one helper for
every parser (and for the loader and the podcast reader, which read the files).

Offsets are into the file's decoded text with its newlines verbatim (``\\n``,
``\\r\\n`` or ``\\r``: WebVTT allows all three), so ``file:line`` messages and
sliced-back sentences agree whatever the file's line ends.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterator, Sequence
from itertools import accumulate
from pathlib import Path

from ingest.errors import DocumentError

# One text document's largest file: a 3-hour episode's VTT is ~0.3 MB.  Bigger
# text files are refused before they are read, so memory stays bounded (README,
# "Limits"); audio is streamed by the decoder, not read here.
MAX_FILE_BYTES = 20_000_000
_LINE_END = re.compile(r"\r\n|\r|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n|$)")


def split_lines(text: str) -> tuple[list[int], list[str]]:
    """Each line's start offset and content (without its terminator)."""
    if "\r" not in text:  # the common case, and three times faster
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        return [0, *accumulate(len(line) + 1 for line in lines)][: len(lines)], lines
    starts = [0, *(m.end() for m in _LINE_END.finditer(text))]
    if starts[-1] == len(text):
        starts.pop()
    ends = [*starts[1:], len(text)]
    return starts, [text[a:b].rstrip("\r\n") for a, b in zip(starts, ends, strict=True)]


def line_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each line, without its line break."""
    for m in _LINE.finditer(text):
        if m.start() == len(text) and not m.group(0):
            break
        line = m.group(0).rstrip("\r\n")
        yield m.start(), m.start() + len(line)


class LineIndex:
    """Offset -> 1-based line number, for messages that say file:line."""

    def __init__(self, text: str | None = None, starts: Sequence[int] | None = None) -> None:
        if starts is None:
            starts = [0, *(m.end() for m in _LINE_END.finditer(text or ""))]
        self._starts = starts

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self._starts, offset)


def read_text(path: Path) -> tuple[str, str]:
    """The file's text (newlines verbatim, so offsets slice back) and its sha256."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DocumentError(
                str(path), 0, f"{size / 1e6:.1f} MB is over the {MAX_FILE_BYTES / 1e6:.0f} MB limit"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(str(path), 0, f"cannot read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DocumentError(str(path), line, "not UTF-8 text") from exc
    return text, hashlib.sha256(data).hexdigest()
