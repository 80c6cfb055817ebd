"""Serving under load: searches off the event loop, a queue limit, an optional
per-client rate limit.

A search is CPU work (torch for the question, FAISS, BM25); run on the event
loop it makes ``/healthz`` and ``/metrics`` wait behind every queued search.
``SearchPool.run`` hands it to a small thread pool instead.  FAISS and torch
share one OpenMP runtime, and ``index.store.load`` sets it to one thread (one
query at a time gains nothing from more), so ``search_threads`` threads run
that many searches side by side, each single-threaded.

Past ``max_queued`` searches running or waiting, a request is refused at once
with 503 and ``Retry-After`` rather than queued for seconds.  With
``rate_limit`` set, each client address gets a token bucket of that many
searches per second (bursts of up to twice that) and 429 past it.  Both are a
few lines of bookkeeping on the event loop, hence no dependency.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from index.backend import Index
from server.settings import Settings

if TYPE_CHECKING:
    from index.embedder import TokenVectors

T = TypeVar("T")
Question = tuple[Index, str] | None
CLIENTS = 10_000  # rate-limit buckets kept (least recently seen dropped first)


class Refused(Exception):
    """A search turned away: too many waiting (503) or this client too fast (429)."""

    def __init__(self, status: int, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def one_thread() -> None:
    """Each search thread single-threaded, as the module docstring says.  OpenMP's
    thread count is per calling thread: ``index.store`` set it on the thread that
    loaded the index, and a pool thread would otherwise start a team of one
    thread per core, whose spinning competes with the other search and the event
    loop (measured: docs/reliability.md, "Searches off the event loop")."""
    import faiss

    faiss.omp_set_num_threads(1)


class SearchPool:
    def __init__(self, threads: int, max_queued: int, rate: float = 0, batch: int = 0) -> None:
        self.executor = ThreadPoolExecutor(
            threads, thread_name_prefix="podcite-search", initializer=one_thread
        )
        self.max_queued = max_queued
        self.rate = rate
        self.batcher = QuestionBatcher(self.executor, batch) if batch > 1 else None
        self.pending = 0  # changed on the event loop only
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def run(
        self, request: Request, fn: Callable[..., T], *args: Any, question: Question = None
    ) -> T:
        """``fn(*args)`` in a search thread, once admitted (503/429 otherwise).
        ``question`` (index, text): its vector is made first, batched with the
        other questions waiting at the same moment, when batching is on."""
        if self.pending >= self.max_queued:
            raise Refused(503, f"busy: {self.pending} searches waiting, try again shortly", 1)
        if self.rate:
            self._take(request.client.host if request.client else "?")
        self.pending += 1
        try:
            if question is not None and self.batcher is not None:
                await self.batcher.embed(*question)
            return await asyncio.get_running_loop().run_in_executor(
                self.executor, partial(fn, *args)
            )
        finally:
            self.pending -= 1

    def _take(self, client: str) -> None:
        now = time.monotonic()
        tokens, last = self._buckets.pop(client, (2 * self.rate, now))
        tokens = min(2 * self.rate, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            wait = math.ceil((1 - tokens) / self.rate)
            raise Refused(429, f"too many searches from {client}: {self.rate:g} a second", wait)
        self._buckets[client] = (tokens - 1, now)
        while len(self._buckets) > CLIENTS:
            self._buckets.popitem(last=False)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class QuestionBatcher:
    """Micro-batching: the questions of searches waiting at the same moment are
    embedded in one forward pass, and their vectors put in the index's question
    cache, where the search then finds them.

    No timer: the first question is embedded at once, alone; the questions that
    arrive while that pass runs wait, and go together in the next one (up to
    ``size``).  So a lone client pays nothing, and under load the batches grow
    with the queue.  Whether it pays on a given machine is measured in
    docs/benchmarks.md ("Serving many users"); it is off by default."""

    def __init__(self, executor: ThreadPoolExecutor, size: int) -> None:
        self.executor = executor
        self.size = size
        self.waiting: dict[tuple[int, str], tuple[Index, list[asyncio.Future[None]]]] = {}
        self.task: asyncio.Task[None] | None = None

    async def embed(self, index: Index, question: str) -> None:
        if index.embedder is None:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault((id(index), question), (index, []))[1].append(fut)
        if self.task is None:
            self.task = asyncio.create_task(self._drain())
        await fut

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.waiting:
                keys = list(self.waiting)[: self.size]
                batch = [(k[1], *self.waiting.pop(k)) for k in keys]
                try:
                    await loop.run_in_executor(self.executor, _embed_batch, batch)
                except Exception as exc:  # each search reports it as it would have
                    for _, _, futs in batch:
                        for f in futs:
                            if not f.done():
                                f.set_exception(exc)
                    continue
                for _, _, futs in batch:
                    for f in futs:
                        if not f.done():
                            f.set_result(None)
        finally:
            self.task = None


def _embed_batch(batch: list[tuple[str, Index, list[asyncio.Future[None]]]]) -> None:
    """One forward pass per index over its waiting questions; each question's
    vectors go into that index's question cache (``Index.embed`` and
    ``Index.question`` read them from there)."""
    by_index: dict[int, tuple[Index, list[str]]] = {}
    for q, index, _ in batch:
        by_index.setdefault(id(index), (index, []))[1].append(q)
    for index, qs in by_index.values():
        assert index.embedder is not None  # checked in QuestionBatcher.embed
        for q, tv in zip(qs, index.embedder.token_vectors(qs), strict=True):
            index.queries.get(q, _given(tv))


def _given(tv: TokenVectors) -> Callable[[], TokenVectors]:
    return lambda: tv


def install(app: FastAPI, settings: Settings) -> SearchPool:
    pool = SearchPool(
        settings.search_threads, settings.max_queued, settings.rate_limit, settings.embed_batch
    )

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status,
            content={"detail": exc.message},
            headers={"Retry-After": str(exc.retry_after)},
        )

    return pool
