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
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from server.settings import Settings

T = TypeVar("T")
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
    def __init__(self, threads: int, max_queued: int, rate: float = 0) -> None:
        self.executor = ThreadPoolExecutor(
            threads, thread_name_prefix="podcite-search", initializer=one_thread
        )
        self.max_queued = max_queued
        self.rate = rate
        self.pending = 0  # changed on the event loop only
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def run(self, request: Request, fn: Callable[..., T], *args: Any) -> T:
        if self.pending >= self.max_queued:
            raise Refused(503, f"busy: {self.pending} searches waiting, try again shortly", 1)
        if self.rate:
            self._take(request.client.host if request.client else "?")
        self.pending += 1
        try:
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


def install(app: FastAPI, settings: Settings) -> SearchPool:
    pool = SearchPool(settings.search_threads, settings.max_queued, settings.rate_limit)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status,
            content={"detail": exc.message},
            headers={"Retry-After": str(exc.retry_after)},
        )

    return pool
