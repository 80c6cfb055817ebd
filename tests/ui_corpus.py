"""A small library with transcripts, for the page's tests: the seed wiki page
plus two WebVTT transcripts (one of the seed's episode, one of another),
written here (not copied from anywhere) so that context, timelines, players
and the episode picker have something to show."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import CORPUS

EPISODE = "Xu1FMCxoEFc"  # the seed page's episode
OTHER = "SleepLight1"
CUE_S = 6.0
# Per transcript: its file, catalog row, and (cues, the sentence said in each) topics.
TRANSCRIPTS = {
    "depression-episode.vtt": (
        f"{EPISODE},Understanding & Conquering Depression,2021-08-23,hubermanlab,34",
        [
            (20, "Morning light sets the circadian clock and helps people wake up on time."),
            (
                20,
                "Ketamine at low doses causes dissociation, a sense of floating outside the body.",
            ),
            (
                20,
                "Regular exercise raises mood through dopamine and endorphins over several weeks.",
            ),
            (
                20,
                "Ketamine blocks the NMDA receptor, which explains the dissociation people report.",
            ),
        ],
    ),
    "sleep-episode.vtt": (
        f"{OTHER},Master Your Sleep,2021-01-11,hubermanlab,2",
        [
            (15, "Viewing sunlight early in the day makes it easier to fall asleep at night."),
            (15, "Some people use ketamine clinics, but dissociation makes sleep research hard."),
            (15, "Cool bedrooms and a regular bedtime deepen slow wave sleep."),
        ],
    ),
}


def _stamp(seconds: float) -> str:
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.000"


def transcript_text(topics: list[tuple[int, str]]) -> str:
    lines = ["WEBVTT", ""]
    t = 0.0
    for cues, sentence in topics:
        for i in range(cues):
            said = f"{sentence[:-1]}, remark {i + 1}."
            lines += [f"{_stamp(t)} --> {_stamp(t + CUE_S)}", said, ""]
            t += CUE_S
    return "\n".join(lines)


def duration(name: str) -> float:
    return CUE_S * sum(c for c, _ in TRANSCRIPTS[name][1])


def make(dst: Path) -> Path:
    """The corpus folder at ``dst``: the seed page, the catalog with the
    transcripts' rows, the transcripts."""
    shutil.copytree(CORPUS, dst)
    catalog = dst / "catalog.csv"
    rows = "".join(f"{name},{row}\n" for name, (row, _) in TRANSCRIPTS.items())
    catalog.write_text(catalog.read_text(encoding="utf-8") + rows, encoding="utf-8")
    for name, (_, topics) in TRANSCRIPTS.items():
        (dst / name).write_text(transcript_text(topics), encoding="utf-8")
    return dst
