"""The HTTP surface and serving under load (issue 14): headers, Host check,
HEAD, the admin key, /readyz, limits, strict parameters, schemathesis, and a
real server that keeps answering while searches queue and indexes reload."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from index import build, store
from ingest import load
from server import schemas
from server.app import create_app
from server.security import exposure_warning
from server.settings import Settings
from tests.conftest import ROOT, free_port


@pytest.fixture(scope="module")
def client(seed_index, seed_index_dir: Path):  # type: ignore[no-untyped-def]
    with TestClient(create_app(Settings(index_dir=seed_index_dir), index=seed_index)) as c:
        yield c


@pytest.mark.parametrize(
    "path", ["/", "/?q=ketamine", "/api/search?q=ketamine", "/api/search", "/nope",
             "/static/style.css", "/healthz", "/readyz", "/openapi.json"],
)  # fmt: skip
def test_security_headers_on_every_response(client: TestClient, path: str) -> None:
    r = client.get(path)
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "frame-src https://www.youtube-nocookie.com" in csp and "script-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert r.headers["x-frame-options"] == "DENY"


def test_host_allow_list(seed_index, seed_index_dir: Path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(Settings(index_dir=seed_index_dir), index=seed_index)
    c = TestClient(app)
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "testserver"):
        assert c.get("/healthz", headers={"Host": host}).status_code == 200, host
    r = c.get("/api/search?q=ketamine", headers={"Host": "rebind.attacker.example"})
    assert r.status_code == 400 and "nosniff" in r.headers["x-content-type-options"]
    named = Settings(index_dir=seed_index_dir, allowed_hosts=("podcite.example.org",))
    c2 = TestClient(create_app(named, index=seed_index))
    assert c2.get("/healthz", headers={"Host": "podcite.example.org"}).status_code == 200


@pytest.mark.parametrize("path", ["/", "/healthz", "/readyz", "/api/search?q=ketamine"])
def test_head_wherever_get(client: TestClient, path: str) -> None:
    get, head = client.get(path), client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]


def test_metrics_need_the_admin_key_beyond_localhost(seed_index, seed_index_dir: Path) -> None:  # type: ignore[no-untyped-def]
    local = TestClient(create_app(Settings(index_dir=seed_index_dir), index=seed_index))
    assert local.get("/metrics").status_code == 200
    public = Settings(index_dir=seed_index_dir, host="0.0.0.0")
    assert "without PODCITE_ADMIN_KEY" in (exposure_warning(public) or "")
    open_ = TestClient(create_app(public, index=seed_index))
    r = open_.get("/metrics")
    assert r.status_code == 403 and "no PODCITE_ADMIN_KEY" in r.json()["detail"]
    assert open_.post("/admin/reload").status_code == 403
    keyed = public.model_copy(update={"admin_key": "s3cret"})
    assert exposure_warning(keyed) is None
    c = TestClient(create_app(keyed, index=seed_index))
    assert c.get("/metrics").status_code == 403
    assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert c.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert c.get("/api/search?q=ketamine").status_code == 200  # the API itself is open


def test_readyz_names_the_served_build(
    client: TestClient, seed_index, seed_index_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    body = client.get("/readyz").json()
    assert body["status"] == "ready" and body["version"] == seed_index.path.name
    assert body["built_at"] == seed_index.built_at
    none = TestClient(create_app(Settings(index_dir=seed_index_dir), index=None))  # no lifespan
    assert none.get("/readyz").status_code == 503


def test_per_client_rate_limit_is_an_option(seed_index, seed_index_dir: Path) -> None:  # type: ignore[no-untyped-def]
    c = TestClient(create_app(Settings(index_dir=seed_index_dir, rate_limit=1), index=seed_index))
    codes = [c.get("/api/search?q=ketamine").status_code for _ in range(4)]
    assert codes[:2] == [200, 200] and 429 in codes[2:]
    r = c.get("/api/search?q=ketamine")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    ("params", "status", "field", "words"),
    [
        ({"q": "x", "after": "2021-W34-1"}, 422, "after", "YYYY-MM-DD"),
        ({"q": "x", "after": "2021-02-30"}, 422, "after", "YYYY-MM-DD"),
        ({"q": "x", "after": "2022-01-01", "before": "2021-01-01"}, 422, "after", "later than"),
        ({"q": "x", "episode": "not-an-episode"}, 404, "episode", "unknown episode"),
        ({"q": "   "}, 422, "q", "empty"),
        # An empty optional parameter is none of the values the schema states
        # (the page drops its form's empty fields before the same parser).
        ({"q": "x", "kind": ""}, 422, "kind", "empty"),
        ({"q": "x", "k": " "}, 422, "k", "empty"),
        ({"q": "x", "before": ""}, 422, "before", "empty"),
        ({"q": "x", "episode": ""}, 422, "episode", "empty"),
    ],
)
def test_strict_parameters(client: TestClient, params, status: int, field: str, words: str) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/api/search", params=params)
    assert r.status_code == status
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["query", field] and words in detail["msg"]


def test_bodies_are_what_the_schema_declares(client: TestClient) -> None:
    """/api/search and /api/ask are serialised in the search thread and handed
    back as bytes; they still validate against the declared response models,
    which the OpenAPI schema names."""
    for path, model in (("/api/search", schemas.SearchOut), ("/api/ask", schemas.AskOut)):
        r = client.get(path, params={"q": "Which receptor does psilocybin act on?", "k": 3})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = model.model_validate_json(r.content)
        assert len(body.results) == 3 and body.results[0].rank == 1
        assert model.model_validate(r.json()).model_dump(mode="json") == r.json()
        ok = client.get("/openapi.json").json()["paths"][path]["get"]["responses"]["200"]
        assert ok["content"]["application/json"]["schema"]["$ref"].endswith(model.__name__)


def test_openapi_states_what_the_server_enforces(client: TestClient) -> None:
    params = {
        p["name"]: p for p in client.get("/openapi.json").json()["paths"]["/api/search"]["get"][
            "parameters"]
    }  # fmt: skip
    q = params["q"]
    assert q["required"] and q["schema"]["minLength"] == 1 and q["schema"]["maxLength"] == 1000
    assert q["schema"]["pattern"] == r"[^\s\x1c-\x1f\x85]"  # not only what strip() removes

    def inner(name: str) -> dict:  # type: ignore[type-arg]
        return next(s for s in params[name]["schema"]["anyOf"] if s.get("type") != "null")

    assert (inner("k")["minimum"], inner("k")["maximum"]) == (1, 50)
    assert (inner("rerank")["minimum"], inner("rerank")["maximum"]) == (0, 20)
    assert inner("episode")["minLength"] == 1  # "" is refused, as the schema says
    assert inner("kind")["enum"] == ["wiki", "transcript"]
    assert inner("mode")["enum"] == ["hybrid", "dense", "bm25"]
    assert params["after"]["schema"]["format"] == "date" == params["before"]["schema"]["format"]
    assert inner("before")["pattern"].startswith("^") and inner("after")["pattern"].endswith("$")


def test_schemathesis_finds_no_failures(live_server: str, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists():
        pytest.skip("schemathesis is not installed (the dev extra has it)")
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    r = subprocess.run(
        [str(exe), "run", f"{live_server}/openapi.json", "--checks", "all",
         "--max-examples", "40", "--no-color", "--seed", "1", "--wait-for-schema", "30"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-4000:]
    assert "No issues found" in r.stdout


# -- a real server -------------------------------------------------------------


@contextmanager
def serving(
    index: Path, log: Path, *args: str, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    full = {**os.environ, "PYTHONPATH": str(ROOT), "PODCITE_INDEX_DIR": str(index), **env}
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(port), *args],
            env=full, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)
        yield base, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_healthz_answers_while_searches_queue_and_past_the_limit_503(
    seed_index_dir: Path, tmp_path: Path
) -> None:
    env = {"PODCITE_SEARCH_THREADS": "1", "PODCITE_MAX_QUEUED": "12",
           "PODCITE_MAX_HEADER_BYTES": "4096"}  # fmt: skip
    with serving(seed_index_dir, tmp_path / "log", **env) as (base, _):
        done: list[tuple[str, float, int, str | None]] = []

        # Long questions (the model reads its 256 word pieces, each one new to the
        # question cache): a search costs tens of milliseconds, so 39 at once fill
        # the queue on an idle machine too (short ones could all finish as they came).
        filler = " ".join(f"ketamine dose {n} of the trial" for n in range(40))[:900]

        def ask(i: int) -> None:
            r = httpx.get(f"{base}/api/ask", params={"q": f"{i} {filler}", "k": 50},
                          timeout=120)  # fmt: skip
            done.append(("search", time.monotonic(), r.status_code, r.headers.get("retry-after")))

        def health() -> None:
            time.sleep(0.05)  # once the searches are queued
            r = httpx.get(f"{base}/healthz", timeout=120)
            done.append(("health", time.monotonic(), r.status_code, None))

        with ThreadPoolExecutor(40) as pool:
            futures = [pool.submit(ask, i) for i in range(39)] + [pool.submit(health)]
            for f in futures:
                f.result()
        # Request line or headers past PODCITE_MAX_HEADER_BYTES (4 KB here): refused.
        assert _refused(base, "/healthz", {"X-Big": "a" * 8000})
        assert _refused(base, f"/healthz?pad={'b' * 8000}", {})
        assert httpx.get(f"{base}/healthz", headers={"X-Ok": "a" * 2000}).status_code == 200

    searches = [d for d in done if d[0] == "search"]
    (h,) = [d for d in done if d[0] == "health"]
    assert h[2] == 200
    assert {s[2] for s in searches} <= {200, 503}
    assert any(s[2] == 200 for s in searches)
    refused = [s for s in searches if s[2] == 503]
    assert refused and all(s[3] == "1" for s in refused)  # Retry-After
    assert h[1] < max(s[1] for s in searches if s[2] == 200)  # not behind the queue


def _refused(base: str, path: str, headers: dict[str, str]) -> bool:
    try:
        return httpx.get(f"{base}{path}", headers=headers, timeout=30).status_code in (414, 431)
    except httpx.HTTPError:
        return True  # h11 may close the connection instead of answering


def _wait(pred, what: str, seconds: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_live_reload_on_sighup_and_a_bad_index_refused(
    corpus_copy: Path, tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "idx"
    build(load([corpus_copy]).documents, out, embedder)
    log = tmp_path / "log"
    with serving(out, log, PODCITE_RELOAD_SECONDS="0") as (base, proc):
        first = httpx.get(f"{base}/readyz").json()["version"]
        (corpus_copy / "cold.txt").write_text(
            "From: c\nCold water\nCold water exposure raises dopamine for hours [00:01:10].\n"
        )
        build(load([corpus_copy]).documents, out, embedder)
        second = out.resolve().name
        proc.send_signal(signal.SIGHUP)
        _wait(lambda: httpx.get(f"{base}/readyz").json()["version"] == second, "no reload")
        assert second != first
        top = httpx.get(f"{base}/api/search", params={"q": "cold water dopamine", "k": 1}).json()
        assert top["results"][0]["document"]["title"] == "Cold"  # named by its file
        # A new build that fails its checks: refused, the old one keeps serving.
        bad = store.builds_dir(out) / f"29990101T000000000000-{os.getpid()}"
        shutil.copytree(out.resolve(), bad)
        with (bad / store.VECTORS).open("r+b") as fh:
            fh.seek(-4, os.SEEK_END)
            fh.write(b"\x7f\x7f\x7f\x7f")
        link = out.parent / "tmp-link"
        os.symlink(os.path.relpath(bad, out.parent), link)
        os.replace(link, out)
        proc.send_signal(signal.SIGHUP)
        _wait(lambda: "refused the new index" in log.read_text(), "no refusal logged")
        assert httpx.get(f"{base}/readyz").json()["version"] == second
        r = httpx.get(f"{base}/api/search", params={"q": "cold water dopamine", "k": 1})
        assert r.status_code == 200


def test_workers_share_one_memory_mapped_index(seed_index_dir: Path, tmp_path: Path) -> None:
    """``podcite serve --workers 2``: two processes answer on one port, both
    serve the same build, and each maps the index's vector files rather than
    holding its own copy (the kernel shares a mapped file's pages)."""
    build = seed_index_dir.resolve()
    with serving(seed_index_dir, tmp_path / "log", "--workers", "2") as (base, proc):
        answered: dict[int, str] = {}
        deadline = time.monotonic() + 60

        def health(_: int) -> tuple[int, str]:
            body = httpx.get(f"{base}/healthz", timeout=30).json()  # a new connection each
            return body["worker"], body["built_at"]

        with ThreadPoolExecutor(8) as pool:
            while len(answered) < 2:
                assert time.monotonic() < deadline, f"only workers {set(answered)} answered"
                answered.update(pool.map(health, range(16)))
        assert len(set(answered.values())) == 1  # the same build
        versions = {httpx.get(f"{base}/readyz").json()["version"] for _ in range(8)}
        assert versions == {build.name}
        assert proc.pid not in answered  # the supervisor answers nothing itself
        for pid in answered:
            maps = Path(f"/proc/{pid}/maps").read_text()
            for name in (store.VECTORS, store.SENTENCES):
                assert str(build / name) in maps, f"worker {pid} does not map {name}"
        r = httpx.get(f"{base}/api/search", params={"q": "ketamine", "k": 2})
        assert r.status_code == 200 and r.json()["results"]


def test_micro_batching_embeds_waiting_questions_together(
    seed_index, seed_index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """PODCITE_EMBED_BATCH: questions that wait at the same moment go through
    the model in one pass, and each search answers exactly as it would alone."""
    import asyncio
    import concurrent.futures

    from index.backend import Index

    questions = [f"ketamine dose {i}" for i in range(8)] + ["psilocybin receptor"]
    alone = TestClient(create_app(Settings(index_dir=seed_index_dir), index=seed_index))
    want = {q: alone.get("/api/search", params={"q": q}).json()["results"] for q in questions}

    index = Index(seed_index.backend, seed_index.manifest, seed_index.embedder, seed_index.path)
    sizes: list[int] = []
    encode = index.embedder.token_vectors  # a question's vector and its tokens', one pass

    def spy(texts, *args, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(len(texts))
        return encode(texts, *args, **kwargs)

    monkeypatch.setattr(index.embedder, "token_vectors", spy)
    settings = Settings(index_dir=seed_index_dir, embed_batch=16, search_threads=1)
    app = create_app(settings, index=index)

    async def all_at_once() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await asyncio.gather(*(c.get("/api/search", params={"q": q}) for q in questions))

    # A thread of its own: a browser test's session (Playwright's sync API)
    # may hold a running loop on this thread, where asyncio.run refuses.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        got = pool.submit(asyncio.run, all_at_once()).result()
    assert sum(sizes) == len(questions) and max(sizes) > 1, sizes  # batched, each once
    for q, r in zip(questions, got, strict=True):
        assert r.status_code == 200
        results = r.json()["results"]
        assert [x["id"] for x in results] == [x["id"] for x in want[q]]
        scores = [x["score"] for x in want[q]]
        assert [x["score"] for x in results] == pytest.approx(scores, abs=1e-4)
