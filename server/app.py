"""The web app: the search page and the JSON API over the same search functions.

``create_app(settings)`` builds everything; nothing lives at module level, so
tests make as many apps, over as many indexes, as they like.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from index import Filters, Index, answer, open_index, search
from index.embedder import SentenceTransformerEmbedder
from index.search import (
    ABSTAIN_BELOW,
    AnswerSentence,
    Mode,
    abstains,
    check_query,
    mark_weak,
)
from ingest.errors import PodciteError, QueryError
from ingest.records import KINDS, Hit
from server import schemas
from server.settings import Settings

HERE = Path(__file__).parent

# Query parameters are declared loosely and checked by check_query/_filters, so
# the API, the page and the CLI give one and the same message for bad input.
QParam = Annotated[str, Query(description="The question, 1-1000 characters.")]
KParam = Annotated[int | None, Query(description="How many results, 1-50 (default 5).")]
KindParam = Annotated[str | None, Query(description="Only 'wiki' or 'transcript' results.")]
EpisodeParam = Annotated[str | None, Query(description="Only this episode (YouTube id).")]
DateParam = Annotated[str | None, Query(description="Episode date bound, YYYY-MM-DD, inclusive.")]
ModeParam = Annotated[str | None, Query(description="Ranking: hybrid (default), dense or bm25.")]


def _mode(mode: str | None) -> Mode | None:
    if mode in (None, ""):
        return None
    if mode not in ("dense", "bm25", "hybrid"):
        raise QueryError("mode", "mode must be 'dense', 'bm25' or 'hybrid'")
    return mode  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Outcome:
    query: str
    hits: list[Hit]
    answer: list[AnswerSentence]
    abstained: bool
    took_ms: float


def _filters(
    kind: str | None, episode: str | None, after: str | None, before: str | None
) -> Filters:
    if kind and kind not in KINDS:
        raise QueryError("kind", "kind must be 'wiki' or 'transcript'")
    for name, value in (("after", after), ("before", before)):
        if value and not _is_date(value):
            raise QueryError(name, f"{name} must be a date written YYYY-MM-DD")
    return Filters(
        kind=kind or None, episode=episode or None, after=after or None, before=before or None
    )


def _is_date(value: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def run(
    index: Index,
    q: str,
    k: int,
    filters: Filters,
    with_answer: bool,
    threshold: float = ABSTAIN_BELOW,
    mode: Mode | None = None,
) -> Outcome:
    """The one search path behind the page, /api/search, /api/ask and the CLI."""
    t0 = time.perf_counter()
    query = check_query(q, k)
    hits = mark_weak(search(index, query, k, filters=filters, mode=mode), threshold)
    sentences = answer(index, query, hits, threshold=threshold) if with_answer else []
    took = (time.perf_counter() - t0) * 1000
    return Outcome(query, hits, sentences, abstains(hits, threshold), took)


def ask_response(out: Outcome) -> schemas.AskOut:
    """/api/ask's body; `podcite ask --json` prints the same."""
    return schemas.AskOut(
        query=out.query,
        took_ms=round(out.took_ms, 2),
        answer=[schemas.answer_sentence(a) for a in out.answer],
        abstained=out.abstained,
        results=[schemas.result(h) for h in out.hits],
    )


def _error(field: str, message: str) -> JSONResponse:
    return JSONResponse(
        status_code=422,
        content={"detail": [{"loc": ["query", field], "msg": message, "type": "value_error"}]},
    )


def create_app(settings: Settings | None = None, index: Index | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.index is None:
            embedder = SentenceTransformerEmbedder(settings.model_dir)
            app.state.index = open_index(settings.index_dir, embedder, verify=settings.verify_index)
        # Load the model and warm the query path before the first request.
        search(app.state.index, "warm up", 1)
        yield

    app = FastAPI(
        title="podcite",
        summary="Ask a podcast library; get passages cited to the moment of the episode.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.index = index
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    if settings.metrics:
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator().instrument(app).expose(app, include_in_schema=False)

    @app.exception_handler(QueryError)
    async def _query_error(request: Request, exc: QueryError) -> JSONResponse:
        return _error(exc.field, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": ["query"], "msg": "invalid request"}
        loc = [str(x) for x in first.get("loc", ())]
        field = loc[-1] if loc else "query"
        return _error(field, f"{field}: {first.get('msg', 'invalid value')}")

    @app.exception_handler(PodciteError)
    async def _domain_error(request: Request, exc: PodciteError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    def current(request: Request) -> Index:
        idx: Index | None = request.app.state.index
        if idx is None:
            raise PodciteError("the index is not loaded")
        return idx

    def answer_request(
        request: Request,
        q: str,
        k: int | None,
        kind: str | None,
        episode: str | None,
        after: str | None,
        before: str | None,
        mode: str | None,
        with_answer: bool,
    ) -> Outcome:
        """The API's parameters, checked, into the one search path."""
        filters = _filters(kind, episode, after, before)
        k = settings.default_k if k is None else k
        return run(
            current(request), q, k, filters, with_answer, settings.abstain_below, _mode(mode)
        )

    # The search endpoints are async on purpose: a query is ~10 ms of CPU work
    # (torch, FAISS), and running it on the event loop avoids the thread-pool
    # hop, which cost several ms per query with torch's own threads (measured
    # in docs/benchmarks.md).  podcite serves one user's questions, not a crowd.
    @app.get("/api/search", response_model=schemas.SearchOut, tags=["api"])
    async def api_search(
        request: Request,
        q: QParam = "",
        k: KParam = None,
        kind: KindParam = None,
        episode: EpisodeParam = None,
        after: DateParam = None,
        before: DateParam = None,
        mode: ModeParam = None,
    ) -> schemas.SearchOut:
        """Passages that answer the question, best first, each cited to its moment."""
        out = answer_request(request, q, k, kind, episode, after, before, mode, False)
        return schemas.SearchOut(
            query=out.query,
            took_ms=round(out.took_ms, 2),
            results=[schemas.result(h) for h in out.hits],
        )

    @app.get("/api/ask", response_model=schemas.AskOut, tags=["api"])
    async def api_ask(
        request: Request,
        q: QParam = "",
        k: KParam = None,
        kind: KindParam = None,
        episode: EpisodeParam = None,
        after: DateParam = None,
        before: DateParam = None,
        mode: ModeParam = None,
    ) -> schemas.AskOut:
        """The one to three source sentences that best answer the question, then the passages."""
        out = answer_request(request, q, k, kind, episode, after, before, mode, True)
        return ask_response(out)

    @app.get("/healthz", tags=["ops"])
    def healthz(request: Request) -> dict[str, Any]:
        idx: Index | None = request.app.state.index
        if idx is None:
            return {"status": "starting"}
        return {
            "status": "ok",
            "passages": len(idx.passages),
            "documents": idx.manifest["counts"]["documents"],
            "model": idx.model,
            "built_at": idx.manifest.get("built_at"),
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        params = request.query_params
        q = params.get("q")
        context: dict[str, Any] = {
            "q": q or "",
            "k": params.get("k", str(settings.default_k)),
            "kind": params.get("kind", ""),
            "episode": params.get("episode", ""),
            "after": params.get("after", ""),
            "before": params.get("before", ""),
            "error": None,
            "outcome": None,
            "answer": [],
            "results": [],
        }
        status = 200
        if q is not None:
            try:
                try:
                    k = int(context["k"])
                except ValueError as exc:
                    raise QueryError("k", "k must be a whole number") from exc
                filters = _filters(
                    context["kind"], context["episode"], context["after"], context["before"]
                )
                mode = _mode(params.get("mode"))
                out = run(current(request), q, k, filters, True, settings.abstain_below, mode)
                context["outcome"] = out
                context["answer"] = [schemas.answer_sentence(a) for a in out.answer]
                context["results"] = [(h, schemas.result(h)) for h in out.hits]
            except QueryError as exc:
                context["error"] = exc
                status = 422
        return templates.TemplateResponse(request, "index.html", context, status_code=status)

    return app
