"""What the search page shows, built from the query path's records: one result's
citation and play control; the timeline's SVG; the episode groups; the
library's summary; and the context page of one moment.  The templates only lay
these out.

Context around a moment is its own server-rendered page (``GET /context?doc=
&at=``: the document and the cited sentence's character offset, both stable
for a document's text), read from the backend's ``document_rows`` and
``passage`` when someone opens it, never on the search's path.  A result links
to it from a ``<details>``; page.js fetches it into place.  Inline, ten
results' contexts (two minutes of cues each, or a wiki section whole) took a
10-result page past 100 kB on the whole library (docs/benchmarks.md).

The timeline is drawn here as one SVG path per mark rather than with a chart
library: the page fetches nothing and runs no script to show it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI
from markupsafe import Markup

from index.answer_type import asked_quantity
from index.backend import Index
from index.errors import QueryError
from index.library import EpisodeInfo, Library, library
from index.query import Options, SearchParams, parse, run
from index.records import Hit
from index.timeline import Mark, Strip, strips
from ingest.clock import format_hms
from ingest.records import Episode, Passage, Sentence
from server import schemas
from server.schemas import ResultOut

AROUND_S = 60.0  # the context of a transcript moment: this much before and after
CONTEXT = "/context"
MAX_DOC_CHARS = 1000  # a document id longer than this is no id of any index
YOUTUBE_WATCH = "https://www.youtube.com/watch?v="


@dataclass(frozen=True, slots=True)
class Line:
    """One sentence of a result's context, with its own time link."""

    text: str
    label: str | None  # "1:02:03", "≈1:02:03", or None (no time)
    url: str | None
    cited: bool


@dataclass(slots=True)
class Shown:
    """One result as the page shows it."""

    hit: Hit
    r: ResultOut
    name: str  # the document's name (its path relative to the ingested folder)
    relevance: int  # 0-100: the cosine as a share, never negative
    citation: str
    youtube: str | None = None  # video id: the page can embed it from r.timestamp
    start: int = 0  # the second the player starts at
    context_url: str = ""  # its context page (GET /context)


def relevance(score: float) -> int:
    """A cosine as a readable 0-100 (negative and fused scores never shown)."""
    return round(min(max(score, 0.0), 1.0) * 100)


def time_label(seconds: float, exact: bool) -> str:
    return ("" if exact else "≈") + format_hms(seconds)


def citation(r: ResultOut) -> str:
    """``"<sentence>" — <episode title> (<date>), <h:mm:ss>, <link>`` (parts the
    result lacks are left out, never invented)."""
    source = r.episode.title if r.episode else r.document.title
    if r.episode and r.episode.date:
        source += f" ({r.episode.date})"
    parts = [f"\u201c{r.sentence}\u201d \u2014 {source}"]
    if r.timestamp:
        parts.append(("" if r.timestamp.exact else "≈") + r.timestamp.label)
    if r.url:
        parts.append(r.url)
    return ", ".join(parts)


def _line(s: Sentence, ep: Episode | None, cited: bool) -> Line:
    t = s.time
    label = time_label(t.seconds, t.exact) if t else None
    return Line(s.text, label, ep.url_at(t.seconds) if ep and t else None, cited)


def around(
    index: Index, p: Passage, j: int, before: float = AROUND_S, after: float = AROUND_S
) -> list[Line]:
    """The sentences around sentence ``j`` of ``p``: a transcript's from ``before``
    seconds before its moment to ``after`` seconds after, a wiki passage's whole
    section; each once, in document order, the cited one marked."""
    cited = p.sentences[j].start
    t = p.time_of(j)
    seen: dict[int, Sentence] = {}
    for row in index.backend.document_rows(p.document_id):
        other = index.backend.passage(row)
        if p.kind == "transcript":
            span = other.span
            if t is None or span is None or span[1] < t.seconds - before:
                continue
            if span[0] > t.seconds + after:
                break  # rows are in document order
            for s in other.sentences:
                if s.time and t.seconds - before <= s.time.seconds <= t.seconds + after:
                    seen.setdefault(s.start, s)
        elif other.section == p.section:
            for s in other.sentences:
                seen.setdefault(s.start, s)
    seen.setdefault(cited, p.sentences[j])  # the cited sentence is always there
    return [_line(seen[k], p.episode, k == cited) for k in sorted(seen)]


def context_url(hit: Hit) -> str:
    """The context page of a hit's cited sentence."""
    return CONTEXT + "?" + urlencode({"doc": hit.passage.document_id, "at": hit.sentence.start})


def find_sentence(index: Index, doc: str, at: int) -> tuple[Passage, int] | None:
    """The passage of document ``doc`` holding the sentence that starts at
    character ``at``, and that sentence's index; None where there is none."""
    for row in index.backend.document_rows(doc):
        p = index.backend.passage(row)
        if p.start <= at <= p.end:
            for j, s in enumerate(p.sentences):
                if s.start == at:
                    return p, j
    return None


def context_page(idx: Index, raw: Mapping[str, str | None]) -> tuple[int, dict[str, Any]]:
    """The context page's status and template context for its raw query string:
    ``doc`` (a document id, as the API's ``source.path``) and ``at`` (the
    character offset where the cited sentence starts)."""
    doc, at = (raw.get("doc") or "").strip(), (raw.get("at") or "").strip()
    context: dict[str, Any] = {"error": None, "passage": None, "lines": [], "hms": format_hms}
    if not doc or len(doc) > MAX_DOC_CHARS:
        context["error"] = QueryError("doc", "name a document of the index (its source path)")
        return 422, context
    if not at.isdigit() or len(at) > 12:
        context["error"] = QueryError("at", "at is the character offset of a sentence (0 or more)")
        return 422, context
    found = find_sentence(idx, doc, int(at))
    if found is None:
        if idx.backend.document_rows(doc):
            context["error"] = QueryError("at", f"no sentence of {doc!r} starts at character {at}")
        else:
            context["error"] = QueryError("doc", f"no document {doc!r} in this index")
        return 404, context
    p, j = found
    context |= {"passage": p, "sentence": p.sentences[j], "time": p.time_of(j)}
    context["lines"] = around(idx, p, j)
    return 200, context


def shown(hits: Sequence[Hit], results: Sequence[ResultOut]) -> list[Shown]:
    out = []
    for h, r in zip(hits, results, strict=True):
        item = Shown(h, r, r.document.id, relevance(r.score), citation(r))
        if r.episode and r.url and r.url.startswith(YOUTUBE_WATCH) and r.timestamp:
            item.youtube, item.start = r.episode.id, int(r.timestamp.seconds)
        elif r.timestamp:
            item.start = int(r.timestamp.seconds)
        item.context_url = context_url(h)
        out.append(item)
    return out


@dataclass(frozen=True, slots=True)
class Group:
    episode: Episode | None
    info: EpisodeInfo | None
    items: list[Shown]


def grouped(items: Sequence[Shown], library: Library) -> list[Group]:
    """Results under their episode, best episode first (by its best result);
    results without an episode last."""
    infos = {e.id: e for e in library.episodes}
    order: dict[str | None, list[Shown]] = {}
    episodes: dict[str, Episode] = {}
    for it in items:
        ep = it.hit.passage.episode
        key = ep.id if ep else None
        if ep:
            episodes[ep.id] = ep
        order.setdefault(key, []).append(it)
    groups = [Group(episodes[k], infos.get(k), v) for k, v in order.items() if k is not None]
    if None in order:
        groups.append(Group(None, None, order[None]))
    return groups


def _attr(value: str) -> str:
    return escape(value, quote=True)


STRIP_W, STRIP_H = 1000, 28
MARK_W = 6  # a mark's width in the strip's units (style.css draws it)
RUN_W = 10  # marks within this of a run's first are drawn as one: 1% of the episode


def position(seconds: float, length: float) -> int:
    """A moment's x on the strip, a whole mark's width inside either end."""
    half = MARK_W // 2
    return round(min(max(seconds / length * STRIP_W, half), STRIP_W - half))


def drawn(marks: Sequence[Mark], length: float) -> list[tuple[Mark, int]]:
    """The marks as the strip draws them: a run of marks within 1% of the
    episode's length of the run's first (``RUN_W``) is one mark, at and linking
    to the run's best moment, with how many moments it stands for.  Marks that
    close overlap or nearly (a mark is 0.6% wide) and can be neither told apart
    nor clicked apart, and an episode on the very topic of the question has one
    every half minute: a whole-library page had 344 marks, 61 kB of its 100.
    At most 101 marks a strip; /api/timeline keeps every moment."""
    out: list[tuple[Mark, int]] = []
    first = -STRIP_W
    for m in sorted(marks, key=lambda m: m.seconds):
        x = position(m.seconds, length)
        if out and x - first < RUN_W:
            best, n = out[-1]
            out[-1] = (m if m.score > best.score else best, n + 1)
        else:
            out.append((m, 1))
            first = x
    return out


def strip_svg(strip: Strip, threshold: float) -> Markup:
    """One episode's strip: its length to scale, a link at each mark, darker
    where it scores higher.  A mark is a vertical path (stroke and width from
    style.css), the shortest SVG for it; marks that would overlap are one
    (``drawn``)."""
    ep, length = strip.episode, strip.duration
    n = len(strip.marks)
    title = f"{ep.title}: {n} moment{'' if n == 1 else 's'} on this question"
    parts = [
        f'<svg class="strip" viewBox="0 0 {STRIP_W} {STRIP_H}" preserveAspectRatio="none" '
        f'role="img" aria-label="{_attr(title)}">',
        f'<rect class="track" width="{STRIP_W}" height="{STRIP_H}"/>',
    ]
    for c in strip.chapters:
        x = min(c.seconds / length, 1.0) * STRIP_W
        parts.append(f'<path class="chapter" d="M{x:.0f} 0v{STRIP_H}"/>')
    span = max(1.0 - threshold, 1e-6)
    for m, many in drawn(strip.marks, length):
        strength = min(max((m.score - threshold) / span, 0.0), 1.0)
        label = f"{time_label(m.seconds, m.exact)} · relevance {relevance(m.score)}"
        if many > 1:
            label += f" · best of {many} moments here"
        opacity = f"{0.3 + 0.7 * strength:.2f}".lstrip("0")
        mark = (
            f'<path d="M{position(m.seconds, length)} 0v{STRIP_H}" stroke-opacity="{opacity}">'
            f"<title>{_attr(label)}</title></path>"
        )
        url = ep.url_at(m.seconds)  # None: an episode with no audio or page to open
        parts.append(f'<a href="{_attr(url)}">{mark}</a>' if url else mark)
    parts.append("</svg>")
    # Every interpolated value above went through _attr (escape) or is a number.
    return Markup("".join(parts))  # nosec B704


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.0f}" if seconds >= 36000 else f"{seconds / 3600:.1f}"


def episode_label(e: EpisodeInfo) -> str:
    """How the picker names an episode: number, title, date."""
    head = f"#{e.number} " if e.number is not None else ""
    return f"{head}{e.title}" + (f" ({e.date})" if e.date else "")


def resolve_episode(value: str | None, library: Library) -> str | None:
    """The episode field as typed: an id, a picker label, a title or ``#N``, to its id."""
    if value is None or not value.strip():
        return value
    v = value.strip()
    for e in library.episodes:
        if v == e.id:
            return v
    low = v.lower().lstrip("#")
    for e in library.episodes:
        if low in (episode_label(e).lower().lstrip("#"), e.title.lower()) or (
            e.number is not None and low == str(e.number)
        ):
            return e.id
    return v


def library_of(app: FastAPI) -> Library:
    """The library's summary for the app's current index, computed once per index
    (an index swapped in by a reload gets its own)."""
    idx: Index = app.state.index
    held = getattr(app.state, "library", None)
    if held is None or held[0] is not idx:
        held = (idx, library(idx))
        app.state.library = held
    lib: Library = held[1]
    return lib


def timeline(
    idx: Index, params: SearchParams, hits: Sequence[Hit], options: Options, lib: Library
) -> list[Strip]:
    """The question's timeline over the top episodes of ``hits``."""
    if not hits:
        return []
    q = idx.embed(params.q)  # cached: the search embedded it already
    wants = asked_quantity(params.q)
    return strips(idx, q, hits, options.abstain_below, lib.durations(), params.kind, wants=wants)


def page(
    idx: Index,
    raw: Mapping[str, str | None],
    options: Options,
    app: FastAPI,
    playable: schemas.Playable = None,
) -> tuple[int, dict[str, Any]]:
    """The page's status and template context for its raw query string."""
    lib = library_of(app)
    context: dict[str, Any] = {f: v or "" for f, v in raw.items()}
    context |= {"k": raw.get("k") or str(options.default_k), "error": None, "outcome": None}
    context |= {"answer": [], "results": [], "groups": [], "strips": []}
    context |= {"library": lib, "hours": hours(lib.transcript_seconds), "hms": format_hms}
    # The picker offers labels only (the field takes a label, a title, #N or an id):
    # a value and a label per option would double its weight.  It is on the home
    # page only: 241 episodes are 25 kB, a quarter of a results page's budget; on
    # a results page, page.js fills the same list from /api/episodes when it is used.
    context["episodes"] = []
    context["grouped"] = raw.get("group") == "episode"
    if raw.get("q") is None:
        context["episodes"] = [episode_label(e) for e in lib.episodes]
        return 200, context
    search_raw = dict(raw) | {"episode": resolve_episode(raw.get("episode"), lib)}
    try:
        params = parse(search_raw)
        out = run(idx, params, True, options)
    except QueryError as exc:
        context["error"] = exc
        return 422, context
    items = shown(out.hits, [schemas.result(h, playable) for h in out.hits])
    context["outcome"] = out
    context["answer"] = [schemas.answer_sentence(a, playable) for a in out.answer]
    context["results"] = items
    context["groups"] = grouped(items, lib) if context["grouped"] else []
    # Nothing to place when the library does not answer: every result is weak.
    found = [] if out.abstained else timeline(idx, params, out.hits, options, lib)
    context["strips"] = [(s, strip_svg(s, options.abstain_below)) for s in found if s.marks]
    return 200, context
