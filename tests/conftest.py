"""Shared fixtures: the real model (loaded once), a seed index, the shared data."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SEED = CORPUS / "hubermanlab-experimental-depression-treatments.txt"
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared/data, or a clean skip where it is absent (a user's clone)."""
    if not (SHARED / "wiki").is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    from index import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:  # type: ignore[no-untyped-def]
    from index import build
    from ingest import load

    out = tmp_path_factory.mktemp("seed") / "index"
    loaded = load([CORPUS])
    build(loaded.documents, out, embedder, catalog_files=loaded.catalog_files)
    return out


@pytest.fixture(scope="session")
def seed_index(seed_index_dir: Path, embedder):  # type: ignore[no-untyped-def]
    from index import open_index

    return open_index(seed_index_dir, embedder)


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Iterator[Path]:
    dst = tmp_path / "corpus"
    shutil.copytree(CORPUS, dst)
    yield dst


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(env: dict[str, str], timeout: float = 120) -> Iterator[str]:
    """A real `podcite serve` in its own process with ``env`` added, until /healthz
    says ok; its base URL.  Stopped on exit.  The one start-up loop of the tests."""
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).json().get("status") == "ok":
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"podcite serve exited: {err[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"podcite serve did not start in {timeout:.0f} s")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def live_server(seed_index_dir: Path) -> Iterator[str]:
    """A real `podcite serve` over the seed index, in its own process."""
    with serving({"PODCITE_INDEX_DIR": str(seed_index_dir)}) as base:
        yield base


@pytest.fixture(scope="session")
def ui_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed page plus two written transcripts (tests/ui_corpus.py)."""
    from tests import ui_corpus as uc

    return uc.make(tmp_path_factory.mktemp("ui") / "corpus")


@pytest.fixture(scope="session")
def ui_index_dir(ui_corpus: Path, embedder) -> Path:  # type: ignore[no-untyped-def]
    from index import build
    from ingest import load

    out = ui_corpus.parent / "index"
    loaded = load([ui_corpus])
    build(loaded.documents, out, embedder, catalog_files=loaded.catalog_files)
    return out


@pytest.fixture(scope="session")
def ui_index(ui_index_dir: Path, embedder):  # type: ignore[no-untyped-def]
    from index import open_index

    return open_index(ui_index_dir, embedder)


@pytest.fixture(scope="session")
def ui_live_server(ui_index_dir: Path) -> Iterator[str]:
    """A real `podcite serve` over the page tests' library."""
    yield from _serve(ui_index_dir)


def _serve(index_dir: Path) -> Iterator[str]:
    with serving({"PODCITE_INDEX_DIR": str(index_dir)}) as base:
        yield base


# The browser tests' chromium (test_browser.py, test_browser_ui.py): Playwright drives
# Debian's chromium; skips where either is missing (a user's machine), CI installs both.
CHROMIUM = os.environ.get("PODCITE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a root user on a machine with no network (see the machine notes).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    required = os.environ.get("PODCITE_REQUIRE_BROWSER") == "1"  # set by .ci/run
    if not Path(CHROMIUM).exists():
        if required:
            pytest.fail(f"chromium not found at {CHROMIUM}")
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()
