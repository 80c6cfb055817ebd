"""Transcript parsing (WebVTT, SRT) and transcript windows.

Small files written here cover the formats and the repairs; the shared
Whisper transcripts, where present, check the reference properties: offsets
slice back to the source, every time is a cue start found again in the raw file.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from pathlib import Path

import pytest

from ingest.catalog import Catalog, file_key, read_csv
from ingest.errors import DocumentError
from ingest.records import Document, Episode, Section, Sentence, Time
from ingest.transcript import MAX_ISSUES, MAX_SENTENCE_WORDS, parse_transcript
from ingest.windows import MAX_WINDOW_CHARS, model_windows, transcript_passages

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
NAME = "Cold Exposure ｜ Huberman Lab Podcast #66.mp3.vtt"


def write(tmp_path: Path, content: str, name: str = NAME) -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    with open(path, newline="", encoding="utf-8") as fh:
        return path, fh.read()


def parse(
    tmp_path: Path, content: str, name: str = NAME, catalog: Catalog | None = None
) -> Document:
    path, text = write(tmp_path, content, name)
    return parse_transcript(path, "doc", text, catalog or Catalog())


def seconds(stamp: str) -> float:
    """Reference timestamp reader, independent of the parser's."""
    *head, last = stamp.replace(",", ".").split(":")
    total = float(last)
    for part, unit in zip(reversed(head), (60, 3600), strict=False):
        total += int(part) * unit
    return total


def assert_verbatim(text: str, doc: Document) -> None:
    """Offsets cover the sentence verbatim: its words appear, in order, in the slice."""
    prev_end = 0
    for s in doc.sentences:
        raw = text[s.start : s.end]
        assert prev_end <= s.start < s.end
        assert text.count("\n", 0, s.start) + 1 == s.line
        pos = 0
        for word in s.text.split():
            found = raw.find(word, pos)
            assert found >= 0, (word, raw)
            pos = found + len(word)
        assert raw[0] == s.text[0] and raw[-1] == s.text[-1]
        prev_end = s.end


VTT = """WEBVTT

00:00.000 --> 00:02.500
 Welcome to the show.

00:02.500 --> 00:05.000
 Today we talk about cold

00:05.000 --> 00:07.250
 and why it helps. Short one.

59:58.000 --> 1:00:01.500
 Past the hour now.

1:00:01.500 --> 1:00:04.000
 Still going.
"""


def test_vtt_times_under_and_over_an_hour(tmp_path: Path) -> None:
    doc = parse(tmp_path, VTT)
    got = [(s.text, s.time, s.end_time) for s in doc.sentences]
    assert got == [
        ("Welcome to the show.", Time(0.0, True), 2.5),
        ("Today we talk about cold and why it helps.", Time(2.5, True), 7.25),
        ("Short one.", Time(5.0, True), 7.25),
        ("Past the hour now.", Time(3598.0, True), 3601.5),
        ("Still going.", Time(3601.5, True), 3604.0),
    ]
    assert doc.kind == "transcript" and [s.trail for s in doc.sections] == [()]


def test_sentence_spanning_cues_covers_the_timing_line(tmp_path: Path) -> None:
    path, text = write(tmp_path, VTT)
    doc = parse_transcript(path, "doc", text, Catalog())
    spanning = doc.sentences[1]
    assert text[spanning.start : spanning.end] == (
        "Today we talk about cold\n\n00:05.000 --> 00:07.250\n and why it helps."
    )
    assert spanning.line == 7
    assert_verbatim(text, doc)


def test_crlf_offsets_and_lines(tmp_path: Path) -> None:
    path, text = write(tmp_path, VTT.replace("\n", "\r\n"))
    doc = parse_transcript(path, "doc", text, Catalog())
    assert [s.text for s in doc.sentences] == [s.text for s in parse(tmp_path, VTT).sentences]
    assert_verbatim(text, doc)


def test_markup_and_entities_map_back(tmp_path: Path) -> None:
    content = "WEBVTT\n\nintro\n00:01.000 --> 00:02.000\n<v Andrew>Salt &amp; <i>water</i>.\n"
    path, text = write(tmp_path, content)
    doc = parse_transcript(path, "doc", text, Catalog())
    (s,) = doc.sentences
    assert s.text == "Salt & water."
    assert text[s.start : s.end] == "Salt &amp; <i>water</i>."


def test_note_blocks_and_glued_header(tmp_path: Path) -> None:
    content = (
        "WEBVTT\n00:01.000 --> 00:02.000\nOne.\n\nNOTE a comment\n\n00:03.000 --> 00:04.000\nTwo.\n"
    )
    doc = parse(tmp_path, content)
    assert [(s.text, s.time) for s in doc.sentences] == [
        ("One.", Time(1.0, True)),
        ("Two.", Time(3.0, True)),
    ]
    assert not [i for i in doc.issues if "catalog" not in i.message]


def test_long_unpunctuated_speech_is_cut_at_cue_boundaries(tmp_path: Path) -> None:
    cues = [
        f"{i // 60:02d}:{i % 60:02d}.000 --> {(i + 2) // 60:02d}:{(i + 2) % 60:02d}.000\n"
        f" word{i} and more words\n"
        for i in range(0, 120, 2)
    ]
    path, text = write(tmp_path, "WEBVTT\n\n" + "\n".join(cues))
    doc = parse_transcript(path, "doc", text, Catalog())
    assert len(doc.sentences) > 1
    starts = {float(i) for i in range(0, 120, 2)}
    for s in doc.sentences:
        assert len(s.text.split()) <= MAX_SENTENCE_WORDS
        assert s.time is not None and s.time.seconds in starts
        assert s.end_time is not None and s.end_time - s.time.seconds <= 30
        assert s.text.startswith("word")  # cut where a cue begins
    joined = " ".join(s.text for s in doc.sentences)
    assert joined.split() == [
        w for i in range(0, 120, 2) for w in f"word{i} and more words".split()
    ]
    assert_verbatim(text, doc)


def test_long_slow_speech_is_cut_every_30_seconds(tmp_path: Path) -> None:
    cues = "".join(
        f"\n00:{i:02d}.000 --> 00:{i + 8:02d}.000\n two words\n" for i in range(0, 48, 8)
    )
    doc = parse(tmp_path, "WEBVTT\n" + cues)
    assert [(s.time, s.end_time) for s in doc.sentences] == [
        (Time(0, True), 24.0),
        (Time(24, True), 48.0),
    ]


def issues(doc: Document) -> list[tuple[int, str]]:
    return [(i.line, i.message) for i in doc.issues if "catalog" not in i.message]


def test_backwards_and_inverted_cues_are_dropped(tmp_path: Path) -> None:
    content = """WEBVTT

00:10.000 --> 00:12.000
 First.

00:14.000 --> 00:13.000
 Inverted.

00:05.000 --> 00:06.000
 Backwards.

00:15.000 --> 00:16.000
 Last.
"""
    doc = parse(tmp_path, content)
    assert [s.text for s in doc.sentences] == ["First.", "Last."]
    found = issues(doc)
    assert [line for line, _ in found] == [6, 9]
    assert "ends before it starts" in found[0][1] and "cue dropped" in found[0][1]
    assert "backwards" in found[1][1] and "cue dropped" in found[1][1]


def test_overlap_clamps_previous_end_and_bad_timing_drops_cue(tmp_path: Path) -> None:
    content = """WEBVTT

00:01.000 --> 00:05.000
 One.

00:03.000 --> 00:06.000
 Two.

00:0x.000 --> 00:07.000
 Broken.

00:08.000 --> 00:09.000
 Three.
"""
    doc = parse(tmp_path, content)
    assert [(s.text, s.end_time) for s in doc.sentences] == [
        ("One.", 3.0),
        ("Two.", 6.0),
        ("Three.", 9.0),
    ]
    found = issues(doc)
    assert [line for line, _ in found] == [6, 9]
    assert "clamped" in found[0][1] and "unparsable" in found[1][1]


def test_issues_are_capped(tmp_path: Path) -> None:
    cues = "".join(f"\n00:{59 - i:02d}.000 --> 00:59.500\n Back {i}.\n" for i in range(40))
    doc = parse(tmp_path, "WEBVTT\n" + cues)
    assert len(doc.sentences) == 1
    assert len(doc.issues) == MAX_ISSUES + 1
    assert "more issues" in doc.issues[-1].message


@pytest.mark.parametrize(
    ("content", "suffix", "line", "words"),
    [
        ("", ".vtt", 1, "empty"),
        ("WEBVTT\n\n", ".vtt", 2, "no cues"),
        ("WEBVTT\n\nNOTE only a note\n", ".vtt", 3, "no parsable cue"),
        ("Hello there.\n\n00:01.000 --> 00:02.000\nHi.\n", ".vtt", 1, "not a WebVTT"),
        ("1\n00:00:01,000 --> 00:00:02,000\n\n", ".srt", 2, "nothing to index"),
        ("WEBVTT\n\n00:02.000 --> 00:01.000\nInverted.\n", ".vtt", 3, "nothing to index"),
        ("just some prose\nover two lines\n", ".srt", 1, "not an SRT"),
        ("1\n00:00:0x,000 --> 00:00:02,000\nHi\n", ".srt", 1, "no parsable cue"),
    ],
)
def test_unreadable_files_raise(
    tmp_path: Path, content: str, suffix: str, line: int, words: str
) -> None:
    with pytest.raises(DocumentError) as err:
        parse(tmp_path, content, name=f"bad{suffix}")
    assert err.value.line == line and words in err.value.message


SRT = """1
00:00:01,000 --> 00:00:03,500
<i>Hello</i> and welcome

2
00:00:03,500 --> 00:00:05,000
to the lab.

3
01:02:03,040 --> 01:02:04,000
Bye.
"""


def test_srt(tmp_path: Path) -> None:
    path, text = write(tmp_path, SRT, "talk.srt")
    doc = parse_transcript(path, "doc", text, Catalog())
    assert [(s.text, s.time, s.end_time) for s in doc.sentences] == [
        ("Hello and welcome to the lab.", Time(1.0, True), 5.0),
        ("Bye.", Time(3723.04, True), 3724.0),
    ]
    first = doc.sentences[0]
    assert text[first.start : first.end].startswith("Hello</i> and welcome\n")
    assert doc.title == "talk"
    assert_verbatim(text, doc)


def test_catalog_match_and_fallback(tmp_path: Path) -> None:
    episode = Episode(id="abcdefghijk", title="Cold Exposure", channel="Huberman Lab", number=66)
    catalog = Catalog()
    catalog.add(episode)
    catalog.by_file[file_key(NAME)] = episode.id
    path, text = write(tmp_path, VTT)
    doc = parse_transcript(path, "doc", text, catalog)
    assert (doc.episode, doc.title, doc.channel, doc.issues) == (
        episode,
        "Cold Exposure",
        "Huberman Lab",
        (),
    )
    assert doc.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()

    other = parse(tmp_path, VTT, name="Dr. X： Sleep ｜ Huberman Lab Podcast #7.mp3.vtt")
    assert (other.episode, other.channel, other.title) == (None, None, "Dr. X： Sleep")
    assert [i.message for i in other.issues] == ["no catalog entry: indexed without episode link"]


def timed_doc(spans: list[tuple[float, float, str]], title: str = "T") -> Document:
    sentences = []
    pos = 0
    for start, end, text in spans:
        sentences.append(Sentence(pos, pos + len(text), text, Time(start, True), end))
        pos += len(text) + 1
    return Document(
        "d", "d.vtt", title, "transcript", None, None, (Section((), tuple(sentences)),), "0"
    )


def test_windows_overlap_and_stride() -> None:
    doc = timed_doc([(t, t + 10, f"S{t:.0f}.") for t in range(0, 200, 10)])
    ps = transcript_passages(doc, window_s=60, stride_s=30)
    assert [(p.span, p.anchor) for p in ps][:2] == [
        ((0, 60), Time(0, True)),
        ((30, 90), Time(30, True)),
    ]
    assert ps[-1].sentences[-1] is doc.sentences[-1]
    assert len({p.id for p in ps}) == len(ps)
    assert all(p.kind == "transcript" and p.section == () and p.path == "d.vtt" for p in ps)
    assert ps == transcript_passages(doc, window_s=60, stride_s=30)  # ids are stable

    flat = transcript_passages(doc, window_s=60, stride_s=60)
    assert [s for p in flat for s in p.sentences] == doc.sentences  # no overlap, no gap


def test_model_windows_fit_the_model_and_partition_the_sentences() -> None:
    doc = timed_doc([(t, t + 1, "word " * 30 + ".") for t in range(120)])
    units = model_windows(doc)
    assert all(len(p.embed_text()) <= MAX_WINDOW_CHARS for p in units)
    # Every sentence in exactly one model window: each gets one vector to pool.
    assert [id(s) for p in units for s in p.sentences] == [id(s) for s in doc.sentences]
    searched = transcript_passages(doc)  # pooled, so not held to the model's limit
    assert max(len(p.embed_text()) for p in searched) > MAX_WINDOW_CHARS
    assert all(p.span is not None and p.span[1] - p.span[0] <= 61 for p in searched)


# --- the shared Whisper transcripts ------------------------------------------------

_TIMING = re.compile(r"^(\S+) --> (\S+)$", re.M)
REAL = [
    "Dr. Lex Fridman： Machines, Creativity & Love ｜ Huberman Lab Podcast #29.mp3.vtt",
    "ADHD & How Anyone Can Improve Their Focus ｜ Huberman Lab Podcast #37.mp3.vtt",
    "Control Pain & Heal Faster with Your Brain ｜ Huberman Lab Podcast #9.mp3.vtt",
]


@pytest.fixture(scope="module")
def real() -> list[tuple[str, Document]]:
    folder = SHARED / "transcripts"
    if not folder.is_dir():
        pytest.skip("shared transcripts not present")
    catalog = read_csv(SHARED / "catalog" / "transcripts.csv")
    paths = [folder / n for n in REAL if (folder / n).is_file()]
    if not paths:
        pytest.skip("the chosen shared transcripts are not present")
    out = []
    for path in paths:
        with open(path, newline="", encoding="utf-8") as fh:
            text = fh.read()
        out.append((text, parse_transcript(path, path.stem, text, catalog)))
    return out


def test_real_times_are_cue_starts_in_the_raw_file(real: list[tuple[str, Document]]) -> None:
    assert any((d.sentences[-1].end_time or 0) > 3600 for _, d in real)  # one runs past an hour
    for text, doc in real:
        assert doc.episode is not None and doc.sentences
        cue_at = [m.start() for m in _TIMING.finditer(text)]
        for s in doc.sentences:
            assert s.time is not None and s.time.exact and s.end_time is not None
            # The timing line before the sentence's first and last characters.
            first = _TIMING.match(text, cue_at[_last_before(cue_at, s.start)])
            last = _TIMING.match(text, cue_at[_last_before(cue_at, s.end - 1)])
            assert first is not None and last is not None
            assert seconds(first[1]) == pytest.approx(s.time.seconds, abs=1e-6)
            assert seconds(last[2]) == pytest.approx(s.end_time, abs=1e-6)
        assert_verbatim(text, doc)


def test_real_windows(real: list[tuple[str, Document]]) -> None:
    for _, doc in real:
        ps = transcript_passages(doc)
        assert ps and len({p.id for p in ps}) == len(ps)
        for p in ps:
            assert p.span is not None and p.span[0] < p.span[1]
            assert p.anchor is not None and p.anchor.exact and p.anchor == p.sentences[0].time
        assert [p.anchor.seconds for p in ps if p.anchor] == sorted(
            p.anchor.seconds for p in ps if p.anchor
        )


def _last_before(starts: list[int], offset: int) -> int:
    return bisect_right(starts, offset) - 1
