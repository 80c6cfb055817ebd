"""The web app: the search page and the JSON API, thin adapters over index.query.

``create_app(settings)`` builds everything; nothing lives at module level, so
tests make as many apps, over as many indexes, as they like.  Every route
takes the same parameters (``index.query.SearchParams``, declared once as the
API's query model and used by the page to check its raw query string) and
calls ``index.query.run``; this module only translates to HTTP.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from index.backend import Index
from index.errors import QueryError, UnknownEpisode
from index.query import SearchParams, first_error, run
from ingest.errors import PodciteError
from server import docs, limits, pages, reload, schemas, security
from server.media import ROUTE, AudioFolders
from server.settings import Settings

HERE = Path(__file__).parent
Params = Annotated[SearchParams, Query()]
PAGE_FIELDS = ("q", "k", "kind", "episode", "after", "before", "mode")
PAGE_CHOICES = ("group",)  # how the page lays results out, not search parameters
# Besides 200 and 422 (FastAPI states those): what the API may answer (issue 14).
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "An episode filter naming no episode of the index."},
    429: {"description": "Too many searches from this client (when rate-limited)."},
    503: {"description": "Too many searches waiting, or no index loaded; see Retry-After."},
}


def _error(exc: QueryError) -> JSONResponse:
    return JSONResponse(
        status_code=404 if isinstance(exc, UnknownEpisode) else 422,
        content={
            "detail": [{"loc": ["query", exc.field], "msg": exc.message, "type": "value_error"}]
        },
    )


def from_environment() -> FastAPI:
    """One worker's app under ``podcite serve --workers N``: uvicorn starts each
    worker as a fresh process and calls this factory there; the settings come
    from the environment, where the command put its overrides."""
    return create_app(Settings())


def create_app(settings: Settings | None = None, index: Index | None = None) -> FastAPI:
    settings = settings or Settings()
    options = settings.query_options()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.index is None:
            from server.runtime import open_for_queries

            app.state.index = open_for_queries(settings)
        async with reload.watching(reloader):
            yield
        pool.close()

    app = FastAPI(
        title="podcite",
        summary="Ask a podcast library; get passages cited to the moment of the episode.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # server/docs.py serves /docs with local assets
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.index = index
    pool = limits.install(app, settings)  # searches off the event loop, 503 past the queue
    reloader = reload.install(app, settings)  # a newly published index, /readyz
    security.install(app, settings)  # headers, Host check, HEAD, the admin key
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    docs.mount(app)

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

    # Searches run in the pool's threads (server/limits.py), never on the event
    # loop, so /healthz and /metrics answer while they run.  Each request takes
    # the index once: a reload mid-request cannot mix two versions.
    # The body is built and serialised in the search thread too (the declared
    # response_model documents it): the event loop only passes bytes on.
    async def answered(request: Request, params: Params, answers: bool) -> Response:
        idx, playable = current(request), folders(request).playable
        to_json = schemas.ask_json if answers else schemas.search_json

        def body() -> bytes:
            return to_json(run(idx, params, answers, options), playable)

        found = await pool.run(request, body, question=(idx, params.q))
        return Response(found, media_type="application/json")

    @app.get("/api/search", response_model=schemas.SearchOut, tags=["api"], responses=ERRORS)
    async def api_search(request: Request, params: Params) -> Response:
        """Passages that answer the question, best first, each cited to its moment."""
        return await answered(request, params, answers=False)

    @app.get("/api/ask", response_model=schemas.AskOut, tags=["api"], responses=ERRORS)
    async def api_ask(request: Request, params: Params) -> Response:
        """The one to three source sentences that best answer the question, then the passages."""
        return await answered(request, params, answers=True)

    @app.get(ROUTE + "/{path:path}", include_in_schema=False)
    def audio(request: Request, path: str) -> FileResponse:
        """An ingested episode's audio file (byte ranges, so a player can seek);
        nothing outside the folders the index's audio came from (server/media.py)."""
        target = folders(request).file(path)
        if target is None:
            raise HTTPException(status_code=404, detail="no ingested audio at this path")
        return FileResponse(target)

    # async: answered on the event loop itself, with no hop to a thread pool
    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> dict[str, Any]:
        idx: Index | None = request.app.state.index
        if idx is None:
            return {"status": "starting", "worker": os.getpid()}
        return {
            "status": "ok",
            "worker": os.getpid(),  # which process answered (podcite serve --workers N)
            "passages": len(idx),
            "documents": idx.manifest["counts"]["documents"],
            "model": idx.model,
            "built_at": idx.built_at,
        }

    @app.get("/api/timeline", response_model=schemas.TimelineOut, tags=["api"], responses=ERRORS)
    async def api_timeline(request: Request, params: Params) -> schemas.TimelineOut:
        """Where the question comes up: per top episode of its results, its length
        and every moment scoring above the weak threshold."""
        idx = current(request)

        def strips() -> tuple[Any, list[Any]]:
            out = run(idx, params, False, options)
            library = pages.library_of(request.app)
            return out, pages.timeline(idx, params, out.hits, options, library)

        out, found = await pool.run(request, strips)
        return schemas.timeline_response(out.query, options.abstain_below, found)

    @app.get("/api/episodes", response_model=schemas.EpisodesOut, tags=["api"])
    def api_episodes(request: Request) -> schemas.EpisodesOut:
        """Every episode of the library (title, date, number, length) and its totals."""
        current(request)
        return schemas.episodes_response(pages.library_of(request.app))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        raw = {f: request.query_params.get(f) for f in (*PAGE_FIELDS, *PAGE_CHOICES)}
        playable = folders(request).playable
        status, context = await pool.run(
            request, pages.page, current(request), raw, options, request.app, playable
        )
        return templates.TemplateResponse(request, "index.html", context, status_code=status)

    @app.get(pages.CONTEXT, response_class=HTMLResponse, include_in_schema=False)
    async def context(request: Request) -> HTMLResponse:
        """The sentences around one cited sentence (a result's "Around this moment"):
        its own page, so the search page stays light; page.js shows it in place."""
        raw = {f: request.query_params.get(f) for f in ("doc", "at")}
        status, found = await pool.run(request, pages.context_page, current(request), raw)
        return templates.TemplateResponse(request, "context.html", found, status_code=status)

    return app
