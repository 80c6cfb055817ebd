"""A small library with a transcript, for the page's tests: the seed wiki page
plus a WebVTT transcript of the same episode, written here (not copied from
anywhere) so that context, timelines and players have something to show."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import CORPUS

EPISODE = "Xu1FMCxoEFc"
TRANSCRIPT = "depression-episode.vtt"
CUE_S = 6.0
TOPICS = [
    # (how many cues, the sentences said in them, one per cue)
    (20, "Morning light sets the circadian clock and helps people wake up on time."),
    (20, "Ketamine at low doses causes dissociation, a sense of floating outside the body."),
    (20, "Regular exercise raises mood through dopamine and endorphins over several weeks."),
    (20, "Ketamine blocks the NMDA receptor, which explains the dissociation people report."),
]


def _stamp(seconds: float) -> str:
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.000"


def transcript_text() -> str:
    lines = ["WEBVTT", ""]
    t = 0.0
    for cues, sentence in TOPICS:
        for i in range(cues):
            lines += [f"{_stamp(t)} --> {_stamp(t + CUE_S)}", f"{sentence[:-1]}, remark {i + 1}.", ""]
            t += CUE_S
    return "\n".join(lines)


def duration() -> float:
    return CUE_S * sum(c for c, _ in TOPICS)


def make(dst: Path) -> Path:
    """The corpus folder at ``dst``: seed page, catalog with the transcript, transcript."""
    shutil.copytree(CORPUS, dst)
    catalog = dst / "catalog.csv"
    row = f"{TRANSCRIPT},{EPISODE},Understanding & Conquering Depression,2021-08-23,hubermanlab,34\n"
    catalog.write_text(catalog.read_text(encoding="utf-8") + row, encoding="utf-8")
    (dst / TRANSCRIPT).write_text(transcript_text(), encoding="utf-8")
    return dst
