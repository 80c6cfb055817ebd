"""Spoken test episodes: Debian's espeak-ng says known sentences, sox joins them
with silences of known length, so a test knows when each sentence starts.

A sentence's start is where its speech begins (the first sample above 2 % of
the clip's peak: espeak-ng opens each clip with a few milliseconds of
silence), measured on the clips themselves, so it is right to the
millisecond whatever the voice's speed.  bench/transcribe.py uses the same
helpers for its longer episodes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

RATE = 22_050  # espeak-ng's own rate


def tools_or_skip() -> None:
    """Skip where espeak-ng or sox is missing (a user's machine); CI installs both
    (.ci/run) and sets PODCITE_REQUIRE_AUDIO=1, and there a missing tool fails."""
    missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if missing:
        if os.environ.get("PODCITE_REQUIRE_AUDIO") == "1":
            pytest.fail(f"{' and '.join(missing)} not installed")
        pytest.skip(f"{' and '.join(missing)} not installed (apt-get install espeak-ng sox)")


@dataclass(frozen=True)
class Spoken:
    path: Path
    sentences: tuple[str, ...]
    starts: tuple[float, ...]  # seconds, where each sentence's speech begins
    seconds: float  # the whole episode


def _speak(text: str, out: Path, voice: str, wpm: int) -> None:
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(out), text],
        check=True,
        capture_output=True,
    )


def _samples(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def speak_episode(
    sentences: Sequence[str],
    out: Path,
    gaps: Sequence[float] | float = 1.5,
    lead: float = 0.5,
    voice: str = "en-us",
    wpm: int = 165,
) -> Spoken:
    """``out`` (its suffix picks the format: .wav, .mp3, .ogg, .flac) saying
    ``sentences`` after ``lead`` seconds of silence, ``gaps`` seconds apart."""
    work = out.parent / f".{out.stem}-clips"
    work.mkdir(parents=True, exist_ok=True)
    gap_list = [gaps] * len(sentences) if isinstance(gaps, int | float) else list(gaps)
    pieces = [silence(work / "lead.wav", lead, RATE)]
    starts: list[float] = []
    at = len(_samples(pieces[0]))
    for n, text in enumerate(sentences):
        clip = work / f"{n:04d}.wav"
        _speak(text, clip, voice, wpm)
        pcm = _samples(clip)
        loud = np.flatnonzero(np.abs(pcm) > 0.02 * max(int(np.abs(pcm).max()), 1))
        starts.append((at + int(loud[0] if loud.size else 0)) / RATE)
        pieces.append(clip)
        at += len(pcm)
        gap = gap_list[n] if n < len(sentences) - 1 else 0.5
        pieces.append(silence(work / f"{n:04d}-gap.wav", gap, RATE))
        at += len(_samples(pieces[-1]))
    # sox joins the clips and encodes (an .mp3 needs libsox-fmt-mp3); -R: no random
    # dither, so the same episode is the same bytes (and hits the transcript cache).
    subprocess.run(["sox", "-R", *map(str, pieces), str(out)], check=True, capture_output=True)
    shutil.rmtree(work, ignore_errors=True)
    return Spoken(out, tuple(sentences), tuple(starts), at / RATE)


def silence(out: Path, seconds: float, rate: int = 16_000) -> Path:
    """``seconds`` of digital silence, 16-bit mono (``-D``: without sox's dither
    noise, which would also make every run's bytes differ)."""
    args = ["-r", str(rate), "-c", "1", "-b", "16", str(out), "trim", "0", f"{seconds}"]
    subprocess.run(
        ["sox", "-R", "-D", "-n", *args],
        check=True,
        capture_output=True,
    )
    return out
