"""Times written as text, both ways: podcite's one set of clock helpers.

- ``format_hms``: ``H:MM:SS`` (hours always shown, as the wiki citations write them);
- ``format_cue``: ``H:MM:SS.mmm`` (a WebVTT cue time, for messages and written transcripts);
- ``format_clock``: ``12:40`` or ``2:01:33`` (hours only when there are some: progress lines);
- ``parse_hms``: a wiki citation ``HH:MM:SS`` / ``MM:SS``, strictly (None when impossible);
- ``parse_clock``: a question file's ``M:SS`` / ``H:MM:SS`` (or a number), leniently;
- ``cue_seconds``: the parts of a WebVTT/SRT timestamp.
"""

from __future__ import annotations

import re

_HMS = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})$")
_MS = re.compile(r"^(\d{1,2}):(\d{2})$")


def format_hms(seconds: float) -> str:
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def format_cue(seconds: float) -> str:
    whole, millis = divmod(round(seconds * 1000), 1000)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}.{millis:03d}"


def format_clock(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def parse_hms(value: str) -> int | None:
    """Seconds for ``HH:MM:SS``, ``H:MM:SS`` or ``MM:SS``; None when malformed or impossible."""
    m = _HMS.match(value.strip())
    if m:
        h, mi, s = (int(g) for g in m.groups())
        return h * 3600 + mi * 60 + s if mi < 60 and s < 60 and h < 24 else None
    m = _MS.match(value.strip())
    if m:
        mi, s = (int(g) for g in m.groups())
        return mi * 60 + s if mi < 60 and s < 60 else None
    return None


def parse_clock(value: str | float) -> float:
    """Seconds of "M:SS", "H:MM:SS" (or a number already)."""
    if isinstance(value, int | float):
        return float(value)
    seconds = 0.0
    for part in value.strip().split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def cue_seconds(hours: str | None, minutes: str, secs: str, millis: str) -> float | None:
    """A cue timestamp's parts -> seconds (None when minutes or seconds are out of range)."""
    m, s = int(minutes), int(secs)
    if m >= 60 or s >= 60:
        return None
    return round((int(hours) * 3600 if hours else 0) + m * 60 + s + int(millis) / 1000, 3)
