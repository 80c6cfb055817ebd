"""Local transcription: spoken episodes made here (espeak-ng + sox), the real
tiny.en model, the transcript cache, and bad audio.

Cues from words is pure logic and is tested on word lists written here;
everything else runs the real decoder and model on real audio."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from index.serial import passage_from_dict, passage_to_dict
from ingest import load, passages
from ingest.audio import Transcriber, decode
from ingest.catalog import Catalog
from ingest.cues import MAX_CUE_WORDS, Word, cues_from_words
from ingest.errors import AudioError
from ingest.fetch import sha256_of
from ingest.lines import read_text
from ingest.podcast import Media
from ingest.transcript import parse_transcript
from tests.speech import Spoken, silence, speak_episode, tools_or_skip

SENTENCES = (
    "Welcome back to the kitchen hour.",
    "Sourdough bread needs a starter that is fed every day.",
    "Keep the dough at room temperature for twelve hours.",
    "Next week we will talk about making fresh pasta.",
)
GAPS = (1.2, 2.0, 1.5)


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Spoken:
    tools_or_skip()
    return speak_episode(SENTENCES, tmp_path_factory.mktemp("audio") / "kitchen.mp3", GAPS)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def words_of(text: str) -> set[str]:
    return {w.strip(".,!?").lower() for w in text.split()}


# -- cues from words (pure logic) -----------------------------------------------------


def w(start: float, text: str, length: float = 0.3) -> Word:
    return Word(start, start + length, text)


def test_each_sentence_starts_a_cue_at_its_first_word() -> None:
    words = [w(0.5, " Hello"), w(0.9, " there."), w(3.25, " Second"), w(3.6, " one"),
             w(3.9, " here."), w(4.3, " Third?")]  # fmt: skip
    cues = cues_from_words(words)
    assert [(c.start, c.text) for c in cues] == [
        (0.5, "Hello there."),
        (3.25, "Second one here."),
        (4.3, "Third?"),
    ]
    assert all(a.end <= b.start for a, b in itertools.pairwise(cues))


def test_glued_pieces_stay_one_word_and_long_sentences_get_more_cues() -> None:
    glued = cues_from_words([w(0.0, " It"), w(0.3, " costs"), w(0.6, " 60"), w(0.9, ",000.")])
    assert [c.text for c in glued] == ["It costs 60,000."]
    long = [w(i * 0.4, f" word{i}") for i in range(30)]
    cues = cues_from_words(long)
    assert len(cues) == 3 and all(len(c.text.split()) <= MAX_CUE_WORDS for c in cues)
    assert " ".join(c.text for c in cues) == " ".join(f"word{i}" for i in range(30))
    paused = cues_from_words([w(0.0, " and"), w(0.4, " so"), w(3.0, " anyway"), w(3.4, " yes.")])
    assert [c.start for c in paused] == [0.0, 3.0]  # a pause inside a sentence starts a cue


def test_overlapping_word_times_give_ordered_cues() -> None:
    cues = cues_from_words([w(1.0, " One.", 0.6), w(1.4, " Two.")])
    assert cues[0].end <= cues[1].start


# -- real audio, real model ------------------------------------------------------------


def test_transcript_is_written_to_the_cache_and_times_are_first_words(
    spoken: Spoken, cache: Path
) -> None:
    sha = sha256_of(spoken.path)
    t = Transcriber().transcribe(spoken.path, sha, cache)
    assert not t.cached and t.model == "tiny.en"
    assert t.vtt == cache / "transcripts" / f"{sha}.tiny.en.vtt"
    text, _ = read_text(t.vtt)
    assert text.startswith("WEBVTT") and "tiny.en" in text
    doc = parse_transcript(t.vtt, "kitchen", text, Catalog())
    got = doc.sentences
    assert len(got) == len(SENTENCES)
    for said, heard, start in zip(SENTENCES, got, spoken.starts, strict=True):
        assert heard.time is not None and heard.time.exact
        assert abs(heard.time.seconds - start) <= 1.5, (said, heard.text, start)
        assert len(words_of(said) & words_of(heard.text)) >= len(words_of(said)) / 2


def test_the_same_audio_is_never_transcribed_twice(spoken: Spoken, cache: Path) -> None:
    sha = sha256_of(spoken.path)
    first = Transcriber().transcribe(spoken.path, sha, cache)
    again = Transcriber()
    second = again.transcribe(spoken.path, sha, cache)
    assert second.cached and second.vtt == first.vtt
    assert again._model is None  # the model was not even loaded
    assert second.audio_seconds == pytest.approx(first.audio_seconds)


def test_an_audio_file_among_the_paths_becomes_a_transcribed_document(
    spoken: Spoken, cache: Path
) -> None:
    media = Media(cache_dir=cache)
    loaded = load([spoken.path], media=media)
    assert not loaded.errors
    (doc,) = loaded.documents
    assert doc.kind == "transcript" and doc.transcribed == "tiny.en"
    assert doc.id == "kitchen.mp3" and doc.title == "kitchen"
    assert doc.path.endswith(".tiny.en.vtt")  # cited offsets point into the readable VTT
    assert doc.episode is not None and not doc.episode.youtube
    assert doc.episode.audio_url == spoken.path.resolve().as_uri()
    (p,) = passages(doc)
    assert p.transcribed == "tiny.en"
    assert p.anchor is not None
    assert p.episode is not None
    assert p.episode.url_at(p.anchor.seconds) == f"{spoken.path.resolve().as_uri()}#t=" + (
        f"{round(p.anchor.seconds, 1):g}"
    )
    again = passage_from_dict(json.loads(json.dumps(passage_to_dict(p))))
    assert again == p and again.transcribed == "tiny.en"


def test_other_formats_decode(spoken: Spoken, tmp_path: Path) -> None:
    import subprocess

    for suffix in (".ogg", ".flac", ".wav"):
        out = tmp_path / f"k{suffix}"
        subprocess.run(["sox", str(spoken.path), str(out)], check=True, capture_output=True)
        got = decode(out)
        assert got.seconds == pytest.approx(spoken.seconds, abs=0.2) and not got.issues


def test_bad_audio_is_one_warning_each_and_the_rest_is_indexed(
    spoken: Spoken, cache: Path, tmp_path: Path
) -> None:
    import subprocess

    folder = tmp_path / "shows"
    folder.mkdir()
    shutil.copy(spoken.path, folder / "good.mp3")
    wav = folder / "whole.wav"
    subprocess.run(["sox", str(spoken.path), str(wav)], check=True, capture_output=True)
    data = wav.read_bytes()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 2])  # header says twice this
    wav.unlink()
    (folder / "notes.mp3").write_text("these are show notes, not audio\n")
    (folder / "empty.flac").write_bytes(b"")
    silence(folder / "quiet.wav", 3.0)

    loaded = load([folder], media=Media(cache_dir=cache))
    errors = {Path(e.path).name: str(e) for e in loaded.errors}
    assert errors == {
        "notes.mp3": f"{folder / 'notes.mp3'}: not audio "
        "(invalid data found when processing input)",
        "empty.flac": f"{folder / 'empty.flac'}: empty file (0 bytes)",
        "quiet.wav": f"{folder / 'quiet.wav'}: silence only (0:03 under -60 dBFS): nothing to say",
    }
    assert all(isinstance(e, AudioError) for e in loaded.errors)
    docs = {d.id: d for d in loaded.documents}
    assert set(docs) == {"good.mp3", "truncated.wav"}
    (issue,) = [str(i) for i in docs["truncated.wav"].issues]
    assert issue.startswith(f"{folder / 'truncated.wav'}: truncated: 0:0")
    assert "transcribed what there is" in issue
    assert docs["truncated.wav"].sentences  # the half that is there was transcribed
