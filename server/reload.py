"""Live reload: serve a newly published index without a restart.

The index pointer (``data/index``, a symlink, index/store/) is read every
``reload_seconds`` and on ``SIGHUP`` (or ``POST /admin/reload``).  When it
names another build, that build is opened aside in a thread (checksums,
manifest, model; the loaded model is shared, not loaded again) and warmed;
only then is ``app.state.index`` replaced, in one assignment on the event
loop.  Each request takes the reference once and keeps it, so it is answered
wholly by the old or wholly by the new index.  A new build that fails its
checks is refused with a log line and the old one keeps serving; it is tried
again only when the pointer moves again.

``/readyz`` says which build is served (its folder name and ``built_at``),
and 503 while none is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from index.backend import Index
from ingest.errors import PodciteError
from server.settings import Settings

log = logging.getLogger("podcite.reload")


class Reloader:
    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.refused: str | None = None  # a build that failed its checks
        self._busy = asyncio.Lock()

    def pointed(self) -> str | None:
        """The build the pointer names now, resolved."""
        path = self.settings.index_dir
        return os.path.realpath(path) if path.exists() else None

    async def check(self) -> bool:
        """Load and swap in the pointed build if it is new and sound; whether it was."""
        async with self._busy:
            old: Index | None = self.app.state.index
            target = self.pointed()
            if target is None or target == self.refused or old is None:
                return False
            if old.path is not None and os.path.realpath(old.path) == target:
                return False
            try:
                new = await asyncio.to_thread(self._open, Path(target), old)
            except PodciteError as exc:
                self.refused = target
                log.warning(
                    "podcite: refused the new index %s (still serving %s): %s",
                    target,
                    _name(old),
                    exc,
                )
                return False
            self.app.state.index = new  # the swap: requests already running keep `old`
            log.info("podcite: now serving %s (built %s)", _name(new), new.built_at)
            return True

    def _open(self, path: Path, old: Index) -> Index:
        from index.open import open_index, warm

        new = open_index(path, old.embedder, self.settings.verify_index, self.settings.ann)
        warm(new)
        return new

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_seconds)
            try:
                await self.check()
            except Exception:  # never let the watcher die; the next tick tries again
                log.exception("podcite: index reload failed")


def _name(index: Index | None) -> str:
    return index.path.name if index is not None and index.path is not None else "?"


def install(app: FastAPI, settings: Settings) -> Reloader:
    reloader = Reloader(app, settings)

    @app.get("/readyz", tags=["ops"])
    def readyz(request: Request) -> Any:
        """Which index build is served; 503 while none is."""
        idx: Index | None = request.app.state.index
        if idx is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        return {
            "status": "ready",
            "version": _name(idx),
            "built_at": idx.built_at,
            "documents": len(idx.documents),
            "passages": len(idx),
        }

    @app.post("/admin/reload", tags=["ops"], include_in_schema=False)
    async def admin_reload(request: Request) -> dict[str, Any]:
        changed = await reloader.check()
        return {"reloaded": changed, "version": _name(request.app.state.index)}

    return reloader


@contextlib.asynccontextmanager
async def watching(reloader: Reloader) -> AsyncIterator[None]:
    """Run the pointer watch and the SIGHUP handler for the app's lifetime."""
    loop = asyncio.get_running_loop()
    task = loop.create_task(reloader.watch()) if reloader.settings.reload_seconds else None
    hup = False
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reloader.check()))
        hup = True  # only in the main thread (uvicorn's), not under a TestClient
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
        if hup:
            loop.remove_signal_handler(signal.SIGHUP)
