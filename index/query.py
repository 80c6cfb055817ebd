"""The one query path: parameters checked once, then search, answer, abstain.

The page, ``/api/search``, ``/api/ask`` and ``podcite ask`` are short adapters
over ``SearchParams`` (the one parameter parser: the API declares it as its
query model, the page and the CLI validate their raw values with it) and
``run``.  The same bad value gets the same message everywhere, and the
OpenAPI schema states the same constraints the parser enforces.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator
from pydantic import model_validator as _model_validator
from pydantic_core import PydanticCustomError

from index.backend import Index
from index.coverage import names_met, unknown_terms
from index.errors import QueryError, UnknownEpisode
from index.records import (
    ABSTAIN_BELOW,
    ABSTAIN_NAMED_BELOW,
    ABSTAIN_UNKNOWN_BELOW,
    MAX_K,
    MAX_QUERY_CHARS,
    MAX_RERANK,
    MODES,
    AnswerSentence,
    Filters,
    FusionSettings,
    Hit,
    Mode,
    RerankSettings,
)
from index.search import answer, find, found_abstains, mark_weak, named_threshold
from ingest.records import KINDS, Kind

_DIGITS = re.compile(r"[0-9]+")  # ASCII only: int() would also take "５"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# What the schema states (and pydantic enforces) of a date; _is_date adds the
# calendar (no 30 February), which "format: date" states to schema readers.
DATE_PATTERN = (
    r"^(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"  # year 0001-9999
    r"-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])$"
)
_DATE_SCHEMA: dict[str, JsonValue] = {"format": "date"}


def _bad(message: str) -> PydanticCustomError:
    return PydanticCustomError("value_error", message)


def check_question(q: object) -> str:
    """The question, stripped; the one definition of a valid one."""
    if not isinstance(q, str) or not q.strip():
        raise _bad("the question is empty")
    if len(q) > MAX_QUERY_CHARS:
        raise _bad(f"the question is longer than {MAX_QUERY_CHARS} characters")
    return q.strip()


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _given(value: object, name: str) -> bool:
    """Whether an optional parameter is given.  An empty one (``kind=``) is
    refused: the schema states each parameter's values and "" is none of them,
    so the API says so; the page's form sends its empty fields, which ``parse``
    drops before they get here."""
    if value is None:
        return False
    if isinstance(value, str) and not value.strip():
        raise _bad(f"{name} is empty: give a value or leave the parameter out")
    return True


# Not only spaces, as Python's str.strip() counts them: JSON Schema's (ECMA) \s
# leaves out the separators \x1c-\x1f and NEL, which strip() removes.
NOT_BLANK = r"[^\s\x1c-\x1f\x85]"
_COUNTS = {"k": (1, MAX_K), "rerank": (0, MAX_RERANK)}  # each count's range, as the schema states


class SearchParams(BaseModel):
    """A search request's parameters, as the API, the page and the CLI take them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    q: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        pattern=NOT_BLANK,
        description="The question, 1-1000 characters, not only spaces.",
    )
    k: int | None = Field(None, ge=1, le=MAX_K, description="How many results, 1-50 (default 5).")
    kind: Kind | None = Field(None, description="Only 'wiki' or 'transcript' results.")
    episode: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=NOT_BLANK,
        description="Only this episode (its id: a YouTube id).",
    )
    after: str | None = Field(
        None,
        pattern=DATE_PATTERN,
        json_schema_extra=_DATE_SCHEMA,
        description="Episodes on or after this date, YYYY-MM-DD (not later than before).",
    )
    before: str | None = Field(
        None,
        pattern=DATE_PATTERN,
        json_schema_extra=_DATE_SCHEMA,
        description="Episodes on or before this date, YYYY-MM-DD.",
    )
    mode: Mode | None = Field(None, description="Ranking: hybrid (default), dense or bm25.")
    rerank: int | None = Field(
        None,
        ge=0,
        le=MAX_RERANK,
        description="Re-read the first N candidates token by token, 0-20 (0 = off; "
        "default: the server's setting, 5).",
    )

    @field_validator("q", mode="before")
    @classmethod
    def _q(cls, value: object) -> str:
        return check_question(value)

    @field_validator("k", "rerank", mode="before")
    @classmethod
    def _count(cls, value: object, info: Any) -> int | None:
        name = info.field_name
        if not _given(value, name):
            return None
        if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
            value = int(value.strip())
        if not isinstance(value, int) or isinstance(value, bool):
            raise _bad(f"{name} must be a whole number")
        lo, hi = _COUNTS[name]
        if not lo <= value <= hi:
            raise _bad(f"{name} must be between {lo} and {hi}")
        return value

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, value: object) -> object:
        if not _given(value, "kind"):
            return None
        if value not in KINDS:
            raise _bad(f"kind must be {' or '.join(repr(k) for k in KINDS)}")
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: object) -> object:
        if not _given(value, "mode"):
            return None
        if value not in MODES:
            raise _bad(f"mode must be {', '.join(repr(m) for m in MODES)}")
        return value

    @field_validator("episode", mode="before")
    @classmethod
    def _episode(cls, value: object) -> object:
        if not _given(value, "episode"):
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("after", "before", mode="before")
    @classmethod
    def _date(cls, value: object, info: Any) -> object:
        if not _given(value, info.field_name):
            return None
        if not isinstance(value, str) or not _is_date(value.strip()):
            raise _bad(f"{info.field_name} must be a date written YYYY-MM-DD")
        return value.strip()

    @_model_validator(mode="after")
    def _order(self) -> SearchParams:
        if self.after and self.before and self.after > self.before:
            raise _bad(f"after ({self.after}) is later than before ({self.before})")
        return self

    @property
    def filters(self) -> Filters:
        return Filters(kind=self.kind, episode=self.episode, after=self.after, before=self.before)


def _is_date(value: str) -> bool:
    if not _DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def first_error(errors: Sequence[Mapping[str, Any]]) -> QueryError:
    """The first problem of a validation error (pydantic's or FastAPI's list of
    errors), as the QueryError every edge shows."""
    if not errors:
        return QueryError("q", "invalid request")
    err = errors[0]
    loc = [str(x) for x in err.get("loc", ())]
    name = loc[-1] if loc and loc[-1] != "query" else ""
    if err.get("type") == "missing":
        return QueryError(name, "the question is empty" if name == "q" else f"{name} is required")
    if not name:  # a rule over several fields (after/before)
        name = "after"
    return QueryError(name, str(err.get("msg", "invalid value")))


def parse(raw: Mapping[str, Any]) -> SearchParams:
    """Raw values (a page's query string, the CLI's arguments) -> checked
    parameters.  A form sends every field, empty or not: here an empty one is
    one not given (the API, whose schema states each field's values, refuses
    it instead)."""
    given = {f: v for f, v in raw.items() if f == "q" or not _blank(v)}
    try:
        return SearchParams.model_validate(given)
    except ValidationError as exc:
        raise first_error(exc.errors()) from None


@dataclass(frozen=True, slots=True)
class Outcome:
    query: str
    hits: list[Hit]
    answer: list[AnswerSentence]
    abstained: bool
    took_ms: float


@dataclass(frozen=True, slots=True)
class Options:
    """What the edges' settings decide about every query."""

    default_k: int = 5
    abstain_below: float = ABSTAIN_BELOW
    abstain_unknown_below: float = ABSTAIN_UNKNOWN_BELOW
    abstain_named_below: float = ABSTAIN_NAMED_BELOW
    fusion: FusionSettings = FusionSettings()
    rerank: RerankSettings = RerankSettings()  # the first 5 re-read, as the settings' default


def run(
    index: Index, params: SearchParams, with_answer: bool, options: Options = Options()
) -> Outcome:
    """The one search path behind the page, /api/search, /api/ask and the CLI."""
    t0 = time.perf_counter()
    if params.episode is not None and params.episode not in _episodes(index):
        raise UnknownEpisode("episode", f"unknown episode {params.episode!r}: not in this index")
    k = options.default_k if params.k is None else params.k
    second = options.rerank if params.rerank is None else replace(options.rerank, top=params.rerank)
    found = find(
        index,
        params.q,
        k,
        filters=params.filters,
        mode=params.mode,
        fusion=options.fusion,
        rerank=second,
    )
    reads_names = options.abstain_unknown_below > options.abstain_below
    unknown = unknown_terms(index, params.q) if reads_names else []
    # A question naming people or products its first result holds is held to
    # the lower threshold (index/coverage.py, names_met).
    named_below = options.abstain_named_below
    named = named_below < options.abstain_below and names_met(params.q, found.hits)
    below = named_threshold(options.abstain_below, named, bool(unknown), named_below)
    abstained = found_abstains(found, below, unknown, options.abstain_unknown_below)
    hits = mark_weak(found.hits, below, abstained)
    # The rule was read above; the answer only chooses its sentences.
    sentences = (
        answer(index, params.q, hits, below, unknown_below=-1.0)
        if (with_answer and not abstained)
        else []
    )
    took = (time.perf_counter() - t0) * 1000
    return Outcome(params.q, hits, sentences, abstained, took)


def _episodes(index: Index) -> set[str]:
    """The episode ids the index's documents are about (its manifest's list)."""
    return {str(d["episode"]) for d in index.documents.values() if d.get("episode")}
