"""The JSON API's response shapes, and the one function that turns a Hit into one."""

from __future__ import annotations

from pydantic import BaseModel

from index.search import AnswerSentence
from ingest.records import Hit, Time


class TimestampOut(BaseModel):
    seconds: float
    label: str
    exact: bool


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


class ResultOut(BaseModel):
    id: str
    rank: int
    score: float
    kind: str
    text: str
    sentence: str
    document: DocumentOut
    episode: EpisodeOut | None
    section: list[str]
    timestamp: TimestampOut | None
    url: str | None
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
    results: list[ResultOut]


class ErrorOut(BaseModel):
    detail: list[dict[str, object]]


def timestamp(t: Time | None) -> TimestampOut | None:
    if t is None:
        return None
    return TimestampOut(seconds=t.seconds, label=t.label, exact=t.exact)


def result(h: Hit) -> ResultOut:
    p = h.passage
    t = h.time
    return ResultOut(
        id=p.id,
        rank=h.rank,
        score=round(h.score, 4),
        kind=p.kind,
        text=p.text,
        sentence=h.sentence.text,
        document=DocumentOut(id=p.document_id, title=p.document_title),
        episode=EpisodeOut(id=p.episode.id, title=p.episode.title, date=p.episode.date)
        if p.episode
        else None,
        section=list(p.section),
        timestamp=timestamp(t),
        url=p.episode.url_at(t.seconds) if p.episode and t else None,
        links=list(p.links),
        source=SourceOut(path=p.path, start=p.start, end=p.end, line=p.sentences[0].line),
    )


def answer_sentence(a: AnswerSentence) -> AnswerOut:
    s = a.hit.passage.sentences[a.sentence]
    t = s.time or a.hit.passage.anchor
    if s.time is None and t is not None and t.exact:
        # The passage's citation belongs to another of its sentences: for this
        # sentence alone it is only approximate.
        t = Time(t.seconds, exact=False)
    ep = a.hit.passage.episode
    return AnswerOut(
        text=s.text,
        timestamp=timestamp(t),
        url=ep.url_at(t.seconds) if ep and t else None,
        result_id=a.hit.passage.id,
    )
