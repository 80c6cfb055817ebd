"""The web app: the search page and the JSON API, thin adapters over index.query.

``create_app(settings)`` builds everything; nothing lives at module level, so
tests make as many apps, over as many indexes, as they like.  Every route
takes the same parameters (``index.query.SearchParams``, declared once as the
API's query model and used by the page to check its raw query string) and
calls ``index.query.run``; this module only translates to HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from index.backend import Index
from index.errors import QueryError
from index.query import SearchParams, first_error, parse, run
from ingest.errors import PodciteError
from server import schemas
from server.media import ROUTE, AudioFolders
from server.settings import Settings

HERE = Path(__file__).parent
Params = Annotated[SearchParams, Query()]
PAGE_FIELDS = ("q", "k", "kind", "episode", "after", "before", "mode")


def _error(exc: QueryError) -> JSONResponse:
    return JSONResponse(
        status_code=422,
        content={
            "detail": [{"loc": ["query", exc.field], "msg": exc.message, "type": "value_error"}]
        },
    )


def create_app(settings: Settings | None = None, index: Index | None = None) -> FastAPI:
    settings = settings or Settings()
    options = settings.query_options()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.index is None:
            from server.runtime import open_for_queries

            app.state.index = open_for_queries(settings)
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
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(first_error(exc.errors()))

    @app.exception_handler(PodciteError)
    async def _domain_error(request: Request, exc: PodciteError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    def current(request: Request) -> Index:
        idx: Index | None = request.app.state.index
        if idx is None:
            raise PodciteError("the index is not loaded")
        return idx

    def folders(request: Request) -> AudioFolders:
        """The loaded index's local audio folders, worked out once per index."""
        idx = current(request)
        known: tuple[Index, AudioFolders] | None = getattr(request.app.state, "audio", None)
        if known is None or known[0] is not idx:
            known = (idx, AudioFolders.of(idx))
            request.app.state.audio = known
        return known[1]

    # The search endpoints are async on purpose: a query is ~10 ms of CPU work
    # (torch, FAISS), and running it on the event loop avoids the thread-pool
    # hop, which cost several ms per query with torch's own threads (measured
    # in docs/benchmarks.md).
    @app.get("/api/search", response_model=schemas.SearchOut, tags=["api"])
    async def api_search(request: Request, params: Params) -> schemas.SearchOut:
        """Passages that answer the question, best first, each cited to its moment."""
        out = run(current(request), params, False, options)
        return schemas.search_response(out, folders(request).playable)

    @app.get("/api/ask", response_model=schemas.AskOut, tags=["api"])
    async def api_ask(request: Request, params: Params) -> schemas.AskOut:
        """The one to three source sentences that best answer the question, then the passages."""
        out = run(current(request), params, True, options)
        return schemas.ask_response(out, folders(request).playable)

    @app.get(ROUTE + "/{path:path}", include_in_schema=False)
    def audio(request: Request, path: str) -> FileResponse:
        """An ingested episode's audio file (byte ranges, so a player can seek);
        nothing outside the folders the index's audio came from (server/media.py)."""
        target = folders(request).file(path)
        if target is None:
            raise HTTPException(status_code=404, detail="no ingested audio at this path")
        return FileResponse(target)

    @app.get("/healthz", tags=["ops"])
    def healthz(request: Request) -> dict[str, Any]:
        idx: Index | None = request.app.state.index
        if idx is None:
            return {"status": "starting"}
        return {
            "status": "ok",
            "passages": len(idx),
            "documents": idx.manifest["counts"]["documents"],
            "model": idx.model,
            "built_at": idx.built_at,
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        raw = {f: request.query_params.get(f) for f in PAGE_FIELDS}
        context: dict[str, Any] = {f: raw[f] or "" for f in PAGE_FIELDS}
        context |= {"k": raw["k"] or str(settings.default_k), "error": None, "outcome": None}
        context |= {"answer": [], "results": []}
        status = 200
        if raw["q"] is not None:
            try:
                out = run(current(request), parse(raw), True, options)
            except QueryError as exc:
                context["error"] = exc
                status = 422
            else:
                context["outcome"] = out
                playable = folders(request).playable
                context["answer"] = [schemas.answer_sentence(a, playable) for a in out.answer]
                context["results"] = [(h, schemas.result(h, playable)) for h in out.hits]
        return templates.TemplateResponse(request, "index.html", context, status_code=status)

    return app
