"""The records that the pipeline's stages hand to each other.

Time belongs to sentences, not to chunks: every sentence knows where it sits in
its source file (character offsets into the file's decoded text, newlines kept
verbatim) and, when the source says so, when it was said.  Passages are only
groups of sentences, so regrouping them never moves a citation.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from ingest.clock import format_hms

Kind = Literal["wiki", "transcript"]
KINDS: tuple[Kind, ...] = ("wiki", "transcript")  # for checking input at the edges


def passage_id(document_id: str, start: int, end: int) -> str:
    """A passage's stable id: its document and the offsets of its verbatim text."""
    key = f"{document_id}:{start}:{end}".encode()
    return hashlib.sha1(key, usedforsecurity=False).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Episode:
    """An episode: a YouTube video (``youtube``, the default, which every
    episode was before feeds), or a podcast feed's item or a local audio file,
    whose ``id`` is the item's guid (or the audio's content hash)."""

    id: str  # the YouTube video id, a feed item's guid, or "audio:<sha256 prefix>"
    title: str
    date: str | None = None  # ISO date of publication
    channel: str | None = None
    number: int | None = None  # episode number
    season: int | None = None
    duration: float | None = None  # seconds, as the feed states it
    audio_url: str | None = None  # the enclosure (a file:// URL for audio on this disk)
    audio_type: str | None = None  # its MIME type, when the feed gives one
    page_url: str | None = None  # the episode's web page
    youtube: bool = True

    @property
    def url(self) -> str | None:
        """Where to listen: the video, the audio, else the episode page (None: nowhere)."""
        if self.youtube:
            return f"https://www.youtube.com/watch?v={self.id}"
        return self.audio_url or self.page_url

    def url_at(self, seconds: float) -> str | None:
        """The link that opens at ``seconds``: YouTube's ``&t=``, or a media
        fragment (``#t=``, which browsers' audio players honour) on the audio.
        An episode page gets no fragment: an HTML page has no timeline."""
        if self.youtube:
            return f"{self.url}&t={int(seconds)}s"
        if self.audio_url:
            return f"{self.audio_url.split('#', 1)[0]}#t={_fragment_seconds(seconds)}"
        return self.page_url


def _fragment_seconds(seconds: float) -> str:
    """Tenths of a second are what Whisper's word times resolve: ``23.9``, ``12``."""
    return f"{round(max(seconds, 0.0), 1):g}"


Verdict = Literal["confirmed", "corrected", "unverified"]


@dataclass(frozen=True, slots=True)
class Time:
    """A moment in an episode.  ``exact`` only when the source states it for this text.

    A wiki citation checked against the episode's transcript gains a verdict;
    when corrected, ``said_at`` is the transcript's time for the same claim (the
    wiki's own time is kept in ``seconds``)."""

    seconds: float
    exact: bool
    verified: Verdict | None = None
    said_at: float | None = None

    @property
    def label(self) -> str:
        return format_hms(self.seconds)


# A sentence that sends the reader elsewhere: "See …", "Learn more about …",
# "For more details on X, refer to / listen to / watch …".  The verb is required
# after "For more", so "For more severe cases, doctors …" still says something.
_POINTER = re.compile(
    r"^(?:see|refer to|(?:learn|read|explore|discover|find out) more|explore further|check out"
    r"|(?:for|to gain|to get) (?:more|further|additional|a deeper|deeper|an in-depth|in-depth"
    r"|(?:a )?(?:more )?detailed|a comprehensive|comprehensive|a fuller|a broader|a complete)\b"
    r"[^.]*?\b(?:see|refer|explore|listen|watch|check|visit|consult|read|tune|dive|look)\w*)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Sentence:
    start: int  # offsets of the verbatim sentence (markup included) in the source
    end: int
    text: str  # readable text: citation markup removed, links resolved
    time: Time | None = None
    end_time: float | None = None  # transcripts: end of the cue where it ends
    links: tuple[str, ...] = ()
    line: int = 0  # 1-based line of ``start`` in the source, for messages

    @property
    def leads_in(self) -> bool:
        """It ends with a colon: it introduces what follows ("Here is the
        article:", "There are two major pathways out of the amygdala:") and says
        nothing a question is answered by on its own."""
        return self.text.rstrip().endswith(":")

    @property
    def points_elsewhere(self) -> bool:
        """It sends the reader elsewhere ("For more on exercise, see …", "Learn
        more about the role of deliberate cold exposure."): 141 of the shared
        wiki's sentences, which answer nothing on their own."""
        return _POINTER.match(self.text) is not None

    @property
    def says_nothing(self) -> bool:
        """Nothing a question is answered by: a lead-in or a pointer."""
        return self.leads_in or self.points_elsewhere


@dataclass(frozen=True, slots=True)
class Section:
    trail: tuple[str, ...]  # headings from the outermost in; () before any heading
    sentences: tuple[Sentence, ...]
    # Paragraph boundaries as indexes into ``sentences`` (each paragraph's first).
    paragraphs: tuple[int, ...] = (0,)


@dataclass(frozen=True, slots=True)
class ParseIssue:
    """Something wrong in a document that was reported and worked around.

    A ``note`` is a fact about a document that is not wrong in it (a transcript
    no catalog names, a feed read from its cached copy): reported, never counted
    as a problem by ``--strict``."""

    path: str
    line: int
    message: str
    note: bool = False

    def __str__(self) -> str:
        # Line 0: the problem is the whole file or URL (audio, a feed's download).
        if self.line == 0:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class Document:
    id: str  # stable: derived from the file's path relative to its ingest root
    path: str
    title: str
    kind: Kind
    channel: str | None
    episode: Episode | None
    sections: tuple[Section, ...]
    sha256: str
    issues: tuple[ParseIssue, ...] = ()
    # The speech-to-text model that made this transcript (e.g. "tiny.en");
    # None when the publisher or the user supplied the text.
    transcribed: str | None = None

    @property
    def sentences(self) -> list[Sentence]:
        return [s for sec in self.sections for s in sec.sentences]


@dataclass(frozen=True, slots=True)
class Passage:
    id: str
    document_id: str
    document_title: str
    kind: Kind
    channel: str | None
    episode: Episode | None
    section: tuple[str, ...]
    sentences: tuple[Sentence, ...]
    anchor: Time | None  # first exact sentence time, else nearest in section (approximate)
    links: tuple[str, ...] = ()
    path: str = ""
    transcribed: str | None = None  # the model that transcribed it (Document.transcribed)

    @property
    def start(self) -> int:
        return self.sentences[0].start

    @property
    def end(self) -> int:
        return self.sentences[-1].end

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)

    @property
    def span(self) -> tuple[float, float] | None:
        """Transcript passages: the seconds of their first cue's start and last cue's end."""
        first = self.sentences[0].time
        last = self.sentences[-1]
        if first is None or last.end_time is None:
            return None
        return (first.seconds, last.end_time)

    def time_of(self, j: int) -> Time | None:
        """The moment to cite for sentence ``j``: its own time when the source
        gives one; else the passage's anchor, and then only approximate (the
        anchor belongs to another sentence, and its check is not this one's).
        One rule, so a sentence shows the same time wherever it appears."""
        own = self.sentences[j].time
        if own is not None:
            return own
        a = self.anchor
        if a is None:
            return None
        return Time(a.seconds, exact=False) if a.exact else a

    def embed_text(self) -> str:
        """What the model reads: the title and heading trail give context the
        sentences lack ("It primarily targets 5HT2A" does not say what "it" is).
        The rule was chosen by measurement, see docs/benchmarks.md."""
        context = " > ".join((self.document_title, *self.section))
        return f"{context}: {self.text}"
