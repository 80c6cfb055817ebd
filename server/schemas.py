"""The JSON API's response shapes, and the functions that turn the query path's
records into them (``podcite ask --json`` prints the same bodies)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pydantic import BaseModel

from index.library import Library
from index.query import Outcome
from index.records import AnswerSentence, Hit
from index.timeline import Strip
from ingest.clock import format_hms
from ingest.records import Episode, Time

# An episode's audio URL -> one a browser can play (the server's route for a
# local file); None keeps the URL as the index holds it (``podcite ask --json``).
Playable = Callable[[str], str] | None


class TimestampOut(BaseModel):
    seconds: float
    label: str
    exact: bool
    # Wiki citations checked against the episode's transcript (null: not checked).
    verified: str | None = None
    said_at: float | None = None  # for "corrected": when the transcript says it
    said_at_label: str | None = None


class DocumentOut(BaseModel):
    id: str
    title: str


class EpisodeOut(BaseModel):
    id: str
    title: str
    date: str | None


class SourceOut(BaseModel):
    """Where the passage's verbatim text lies, so any citation can be checked."""

    path: str  # relative to the folder that was ingested (the document's id), never the server's
    start: int
    end: int
    line: int


class AudioOut(BaseModel):
    """An episode's audio (not on YouTube), to play from the cited moment."""

    url: str  # without a fragment; ``url`` of the result adds ``#t=SECONDS``
    type: str | None = None
    start: float  # the cited second


class SpanOut(BaseModel):
    start: float
    end: float
    label: str


class ResultOut(BaseModel):
    id: str
    rank: int
    score: float
    weak: bool = False  # below the answer threshold: the nearest passage, not an answer
    kind: str
    span: SpanOut | None = None  # transcripts: the window's first and last cue
    text: str
    sentence: str
    document: DocumentOut
    episode: EpisodeOut | None
    section: list[str]
    timestamp: TimestampOut | None
    url: str | None
    said_at_url: str | None = None  # a corrected citation: the moment the transcript says it
    # "transcript": a wiki result cited at the moment its episode's transcript
    # says it (index/moment.py); the wiki's own time is then source_timestamp.
    moment: str = "source"
    source_timestamp: TimestampOut | None = None
    # With moment "transcript": the transcript's sentence said at timestamp, the
    # words that exact time is exact for (text is the wiki's; None where unread).
    heard: str | None = None
    links: list[str]
    source: SourceOut
    transcribed: str | None = None  # the model that transcribed it here (e.g. "tiny.en")
    audio: AudioOut | None = None
    # The episode's audio as the page plays it (audio.url, where there is one).
    audio_url: str | None = None

    @property
    def trail(self) -> list[str]:
        """Where in its document the passage is, as the page and ``podcite ask``
        show it: a transcript's document is its episode, named beside it already."""
        same = self.episode is not None and self.episode.title == self.document.title
        return [*([] if same else [self.document.title]), *self.section]


class SearchOut(BaseModel):
    query: str
    took_ms: float
    results: list[ResultOut]


class AnswerOut(BaseModel):
    text: str
    timestamp: TimestampOut | None
    url: str | None
    result_id: str
    # As its result's: the transcript's sentence said at timestamp, where the
    # time is the transcript's moment for a wiki sentence.
    heard: str | None = None
    # text continues a spoken sentence begun before it / the spoken sentence goes
    # on after it (a long sentence cut into pieces at cues; index/spoken.py).
    begins_mid_sentence: bool = False
    ends_mid_sentence: bool = False

    @property
    def shown(self) -> str:
        """The text as the page and ``podcite ask`` show it: "…" where it
        begins or ends inside a spoken sentence."""
        before = "…" if self.begins_mid_sentence else ""
        return before + self.text + (" …" if self.ends_mid_sentence else "")


class AskOut(BaseModel):
    query: str
    took_ms: float
    answer: list[AnswerOut]
    abstained: bool  # nothing in the library answers: no answer, results are weak
    results: list[ResultOut]


class ErrorOut(BaseModel):
    detail: list[dict[str, object]]


def timestamp(t: Time | None) -> TimestampOut | None:
    if t is None:
        return None
    return TimestampOut(
        seconds=t.seconds,
        label=t.label,
        exact=t.exact,
        verified=t.verified,
        said_at=t.said_at,
        said_at_label=format_hms(t.said_at) if t.said_at is not None else None,
    )


def _playable(ep: Episode | None, audio: Playable) -> Episode | None:
    if ep is None or ep.youtube or not ep.audio_url or audio is None:
        return ep
    return replace(ep, audio_url=audio(ep.audio_url))


def result(h: Hit, audio: Playable = None) -> ResultOut:
    p = h.passage
    t = h.time
    span = p.span
    ep = _playable(p.episode, audio)
    return ResultOut(
        id=p.id,
        rank=h.rank,
        score=round(h.score, 4),
        weak=h.weak,
        kind=p.kind,
        span=SpanOut(
            start=span[0], end=span[1], label=f"{format_hms(span[0])}–{format_hms(span[1])}"
        )
        if span
        else None,
        text=p.text,
        sentence=h.sentence.text,
        document=DocumentOut(id=p.document_id, title=p.document_title),
        episode=EpisodeOut(id=p.episode.id, title=p.episode.title, date=p.episode.date)
        if p.episode
        else None,
        section=list(p.section),
        timestamp=timestamp(t),
        url=ep.url_at(t.seconds) if ep and t else None,
        said_at_url=ep.url_at(t.said_at) if ep and t and t.said_at is not None else None,
        links=list(p.links),
        moment="transcript" if h.moment is not None else "source",
        source_timestamp=timestamp(h.source_time) if h.moment is not None else None,
        heard=h.heard,  # set with moment only (index/moment.py)
        source=SourceOut(path=p.document_id, start=p.start, end=p.end, line=p.sentences[0].line),
        transcribed=p.transcribed,
        audio=AudioOut(url=ep.audio_url, type=ep.audio_type, start=t.seconds if t else 0.0)
        if ep and not ep.youtube and ep.audio_url
        else None,
        audio_url=ep.audio_url if ep and not ep.youtube and ep.audio_url else None,
    )


def answer_sentence(a: AnswerSentence, audio: Playable = None) -> AnswerOut:
    t = a.time  # the rule for a sentence without its own time lives with the record
    ep = _playable(a.hit.passage.episode, audio)
    return AnswerOut(
        text=a.text,
        timestamp=timestamp(t),
        url=ep.url_at(t.seconds) if ep and t else None,
        result_id=a.hit.passage.id,
        heard=a.heard,
        begins_mid_sentence=a.begins_mid,
        ends_mid_sentence=a.ends_mid,
    )


def search_json(out: Outcome, audio: Playable = None) -> bytes:
    """``/api/search``'s body, serialised (in the search thread, off the event loop)."""
    return search_response(out, audio).model_dump_json().encode()


def ask_json(out: Outcome, audio: Playable = None) -> bytes:
    """``/api/ask``'s body, serialised."""
    return ask_response(out, audio).model_dump_json().encode()


def search_response(out: Outcome, audio: Playable = None) -> SearchOut:
    return SearchOut(
        query=out.query,
        took_ms=round(out.took_ms, 2),
        results=[result(h, audio) for h in out.hits],
    )


def ask_response(out: Outcome, audio: Playable = None) -> AskOut:
    return AskOut(
        query=out.query,
        took_ms=round(out.took_ms, 2),
        answer=[answer_sentence(a, audio) for a in out.answer],
        abstained=out.abstained,
        results=[result(h, audio) for h in out.hits],
    )


class MarkOut(BaseModel):
    seconds: float
    label: str
    score: float  # the dense cosine, at or above the weak threshold
    exact: bool
    url: str | None  # None: an episode with no audio or page to open at a second


class ChapterOut(BaseModel):
    title: str
    seconds: float
    label: str


class StripOut(BaseModel):
    episode: EpisodeOut
    number: int | None
    duration: float  # seconds: the strip's length
    duration_known: bool  # false: the index knows no length; the last mark stands in
    marks: list[MarkOut]
    chapters: list[ChapterOut]


class TimelineOut(BaseModel):
    query: str
    threshold: float
    episodes: list[StripOut]


class EpisodeInfoOut(BaseModel):
    id: str
    title: str
    date: str | None
    number: int | None
    duration: float | None  # seconds (its transcript's end); null: no transcript
    transcript: bool


class EpisodesOut(BaseModel):
    episodes: list[EpisodeInfoOut]
    wiki_pages: int
    transcripts: int
    transcript_hours: float
    first_date: str | None
    last_date: str | None
    built_at: str | None


def timeline_response(query: str, threshold: float, strips: list[Strip]) -> TimelineOut:
    return TimelineOut(
        query=query,
        threshold=threshold,
        episodes=[
            StripOut(
                episode=EpisodeOut(id=s.episode.id, title=s.episode.title, date=s.episode.date),
                number=s.episode.number,
                duration=round(s.duration, 3),
                duration_known=s.duration_known,
                marks=[
                    MarkOut(
                        seconds=m.seconds,
                        label=format_hms(m.seconds),
                        score=round(m.score, 4),
                        exact=m.exact,
                        url=s.episode.url_at(m.seconds),
                    )
                    for m in s.marks
                ],
                chapters=[
                    ChapterOut(title=c.title, seconds=c.seconds, label=format_hms(c.seconds))
                    for c in s.chapters
                ],
            )
            for s in strips
        ],
    )


def episodes_response(lib: Library) -> EpisodesOut:
    return EpisodesOut(
        episodes=[
            EpisodeInfoOut(
                id=e.id,
                title=e.title,
                date=e.date,
                number=e.number,
                duration=e.duration,
                transcript=e.transcript,
            )
            for e in lib.episodes
        ],
        wiki_pages=lib.wiki_pages,
        transcripts=lib.transcripts,
        transcript_hours=round(lib.transcript_seconds / 3600, 2),
        first_date=lib.first_date,
        last_date=lib.last_date,
        built_at=lib.built_at,
    )
