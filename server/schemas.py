"""The JSON API's response shapes, and the functions that turn the query path's
records into them (``podcite ask --json`` prints the same bodies)."""

from __future__ import annotations

from pydantic import BaseModel

from index.query import Outcome
from index.records import AnswerSentence, Hit
from ingest.clock import format_hms
from ingest.records import Time


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

    path: str
    start: int
    end: int
    line: int


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
    links: list[str]
    source: SourceOut


class SearchOut(BaseModel):
    query: str
    took_ms: float
    results: list[ResultOut]


class AnswerOut(BaseModel):
    text: str
    timestamp: TimestampOut | None
    url: str | None
    result_id: str


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


def result(h: Hit) -> ResultOut:
    p = h.passage
    t = h.time
    span = p.span
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
        url=p.episode.url_at(t.seconds) if p.episode and t else None,
        said_at_url=p.episode.url_at(t.said_at)
        if p.episode and t and t.said_at is not None
        else None,
        links=list(p.links),
        moment="transcript" if h.moment is not None else "source",
        source_timestamp=timestamp(h.source_time) if h.moment is not None else None,
        source=SourceOut(path=p.path, start=p.start, end=p.end, line=p.sentences[0].line),
    )


def answer_sentence(a: AnswerSentence) -> AnswerOut:
    t = a.time  # the rule for a sentence without its own time lives with the record
    ep = a.hit.passage.episode
    return AnswerOut(
        text=a.text,
        timestamp=timestamp(t),
        url=ep.url_at(t.seconds) if ep and t else None,
        result_id=a.hit.passage.id,
    )


def search_response(out: Outcome) -> SearchOut:
    return SearchOut(
        query=out.query, took_ms=round(out.took_ms, 2), results=[result(h) for h in out.hits]
    )


def ask_response(out: Outcome) -> AskOut:
    return AskOut(
        query=out.query,
        took_ms=round(out.took_ms, 2),
        answer=[answer_sentence(a) for a in out.answer],
        abstained=out.abstained,
        results=[result(h) for h in out.hits],
    )
