"""Reliability under faults and load (issue 14; figures in docs/reliability.md).

- kill -9 of a real ``podcite ingest`` at random moments: the index is always
  exactly the old or the new build, loadable and verified, and leftovers do not
  pile up (PODCITE_KILL_CYCLES, 5 here, 50 for the doc);
- rebuild under load: 8 clients while the index is rebuilt and live-reloaded
  5 times: no failed request, every response from one whole version
  (PODCITE_LOAD_REQUESTS per phase, 200 here, 1500 for the doc);
- every index file truncated and bit-flipped in turn: refused with a message;
- big and odd files: a 50 MB transcript refused by the stated limit, a 1 MB
  line without sentence ends cut into passages the model reads whole, a page
  of 10,000 paragraphs with bounded memory.

Figures are printed (run with ``-s``); the tests assert behaviour only.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import httpx
import pytest

from index import build, open_index, search, store
from index.builds import NAME, builds_dir, rollback_target
from ingest import load
from ingest.chunking import passages as make_passages
from ingest.errors import PodciteError
from ingest.windows import model_windows
from tests.conftest import CORPUS, ROOT, SEED
from tests.test_serving import serving

GOLDEN = "zebrafish lantern protocol"
GOLDEN_PAGE = f"From: c\nLanterns\nThe {GOLDEN} calms larvae in the dark [00:00:05].\n"


def _corpus(shared: Path, dest: Path, pages: int = 24) -> Path:
    wiki = shared / "wiki" / "hubermanlab"
    small = sorted(wiki.glob("*.md"), key=lambda p: p.stat().st_size)[:pages]
    vtt = min((shared / "transcripts").glob("*.vtt"), key=lambda p: p.stat().st_size)
    dest.mkdir()
    for p in [*small, vtt]:
        shutil.copy(p, dest / p.name)
    return dest


def _fingerprint(out: Path) -> tuple[tuple[str, str], ...]:
    docs = store.read_manifest(out)["documents"]
    return tuple(sorted((d, str(info["sha256"])) for d, info in docs.items()))


def _ingest_cmd(corpus: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "server.cli", "ingest", str(corpus), "--index", str(out)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def _leftovers(out: Path) -> tuple[int, int]:
    """(builds other than the served one and its rollback target, pointer temp links)."""
    root = builds_dir(out)
    keep = {out.resolve(), rollback_target(out)}
    extra = [p for p in root.iterdir() if NAME.match(p.name) and p.resolve() not in keep]
    links = [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.link-")]
    return len(extra), len(links)


@pytest.mark.slow
@pytest.mark.shared
def test_kill_9_at_random_moments_leaves_the_old_or_the_new_build(
    shared: Path, tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    cycles = int(os.environ.get("PODCITE_KILL_CYCLES", "5"))
    corpus = _corpus(shared, tmp_path / "corpus")
    out = tmp_path / "idx"
    env = _env()

    def state(golden: bool) -> None:
        page = corpus / "lanterns.txt"
        if golden:
            page.write_text(GOLDEN_PAGE)
        else:
            page.unlink(missing_ok=True)

    prints: dict[bool, tuple[tuple[str, str], ...]] = {}
    t_full: list[float] = []
    for golden in (False, True):  # the two versions, built whole once
        state(golden)
        t0 = time.monotonic()
        subprocess.run(_ingest_cmd(corpus, out), env=env, check=True, capture_output=True)
        t_full.append(time.monotonic() - t0)
        prints[golden] = _fingerprint(out)
    tops = {g: {"lanterns.txt"} if g else set() for g in (False, True)}
    span = max(t_full[1:])  # an incremental rebuild: what each cycle runs
    rng = random.Random(1414)
    served, outcomes, worst = True, {"old": 0, "new": 0}, (0, 0)
    t_loop = time.monotonic()
    for _ in range(cycles):
        target = not served
        state(target)
        proc = subprocess.Popen(_ingest_cmd(corpus, out), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0, 1.1 * span))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        fp = _fingerprint(out)
        assert fp in (prints[served], prints[target])
        new = fp == prints[target]
        outcomes["new" if new else "old"] += 1
        now = target if new else served  # which version is served: with the page or not
        idx = open_index(out, embedder)  # loads and verifies every checksum
        top = search(idx, GOLDEN, 1)[0].passage.document_id
        assert ({top} & {"lanterns.txt"}) == tops[now]
        worst = max(worst, _leftovers(out))
        print(f"cycle {sum(outcomes.values())}: {'new' if new else 'old'}, "
              f"leftovers {_leftovers(out)}", flush=True)  # fmt: skip
        assert _leftovers(out)[0] <= 1 and _leftovers(out)[1] <= 1  # this kill's only
        served = now
    seconds = time.monotonic() - t_loop
    subprocess.run(_ingest_cmd(corpus, out), env=env, check=True, capture_output=True)
    assert _leftovers(out) == (0, 0)  # the next ingest succeeds and clears the last one
    print(f"\nkill -9: {cycles} cycles in {seconds:.0f} s, {outcomes}, rebuild {span:.1f} s, "
          f"full build {t_full[0]:.1f} s, most leftovers after a kill {worst}")  # fmt: skip


def _pct(xs: list[float], p: int) -> float:
    return statistics.quantiles(xs, n=100)[p - 1] if len(xs) > 1 else xs[0]


@pytest.mark.slow
def test_rebuild_under_load_fails_no_request(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    per_phase = int(os.environ.get("PODCITE_LOAD_REQUESTS", "200"))
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    out = tmp_path / "idx"
    versions: dict[str, set[str]] = {}

    def rebuild(word: str) -> None:
        (corpus / "lanterns.txt").write_text(GOLDEN_PAGE.replace("larvae", f"{word} larvae"))
        docs = load([corpus]).documents
        versions[word] = {p.id for d in docs for p in make_passages(d)}  # before it is served
        build(docs, out, embedder)

    rebuild("v0")
    env = {"PODCITE_RELOAD_SECONDS": "0.2", "PODCITE_SEARCH_THREADS": "2",
           "PODCITE_MAX_QUEUED": "64"}  # fmt: skip
    with serving(out, tmp_path / "log", **env) as (base, _):
        failures: list[str] = []
        mixed: list[set[str]] = []
        lat: dict[str, list[float]] = {"before": [], "during": []}
        phase = {"name": "before"}
        stop = threading.Event()

        def client(n: int | None) -> None:
            with httpx.Client(base_url=base, timeout=60) as c:
                i = 0
                while (n is None and not stop.is_set()) or (n is not None and i < n):
                    t0 = time.perf_counter()
                    name = phase["name"]
                    try:
                        r = c.get("/api/search", params={"q": f"{GOLDEN} {i % 7}", "k": 10})
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        continue
                    finally:
                        i += 1
                    lat[name].append((time.perf_counter() - t0) * 1000)
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                        continue
                    ids = {x["id"] for x in r.json()["results"]}
                    if not any(ids <= v for v in list(versions.values())):
                        mixed.append(ids)

        threads = [threading.Thread(target=client, args=(per_phase // 8,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        phase["name"] = "during"
        threads = [threading.Thread(target=client, args=(None,)) for _ in range(8)]
        for t in threads:
            t.start()
        served = []
        for v in range(1, 6):
            rebuild(f"v{v}")
            want = out.resolve().name
            deadline = time.monotonic() + 120
            while httpx.get(f"{base}/readyz").json()["version"] != want:
                assert time.monotonic() < deadline, "the new index was not served"
                time.sleep(0.1)
            served.append(want)
        while len(lat["during"]) < per_phase:
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:5]
    assert not mixed, mixed[:3]
    assert len(set(served)) == 5
    b, d = lat["before"], lat["during"]
    print(f"\nrebuild under load: {len(b)} requests before, {len(d)} during 5 rebuilds, "
          f"0 failed; p50/p99 before {_pct(b, 50):.0f}/{_pct(b, 99):.0f} ms, "
          f"during {_pct(d, 50):.0f}/{_pct(d, 99):.0f} ms")  # fmt: skip


def test_every_index_file_truncated_or_bit_flipped_is_refused(
    seed_index_dir: Path, tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    live = seed_index_dir.resolve()
    files = sorted(p.relative_to(live) for p in live.rglob("*") if p.is_file())
    assert len(files) >= 12
    refused = 0
    for rel in files:
        if rel.name == "published":
            continue  # a marker, not index data
        for how in ("truncate", "flip"):
            copy = tmp_path / f"{how}-{rel.as_posix().replace('/', '_')}"
            shutil.copytree(live, copy)
            data = (copy / rel).read_bytes()
            if how == "truncate":
                (copy / rel).write_bytes(data[: len(data) // 2])
            else:
                mid = len(data) // 2
                (copy / rel).write_bytes(data[:mid] + bytes([data[mid] ^ 0x01]) + data[mid + 1 :])
            with pytest.raises(PodciteError) as err:
                open_index(copy, embedder)
            assert str(copy) in str(err.value)  # names the index, in one line
            assert "\n" not in str(err.value)
            refused += 1
            shutil.rmtree(copy)
    print(f"\ncorruption: {refused} of {refused} damaged copies refused")


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    big = docs / "huge.vtt"
    cue = "00:00:01.000 --> 00:00:02.000\nwords and more words\n\n"
    with big.open("w") as fh:
        fh.write("WEBVTT\n\n")
        while fh.tell() < 50_000_000:
            fh.write(cue * 1000)
    (docs / "ok.txt").write_text(GOLDEN_PAGE)
    tracemalloc.start()
    loaded = load([docs])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [d.id for d in loaded.documents] == ["ok.txt"]
    (err,) = loaded.errors
    assert "huge.vtt" in str(err) and "over the 20 MB limit" in str(err)
    assert peak < 5_000_000
    print(f"\n50 MB transcript: refused, load peak {peak / 1e6:.1f} MB")


def _pieces(embedder, texts: list[str]) -> int:  # type: ignore[no-untyped-def]
    tok = embedder._load().tokenizer
    return max(len(tok(t, add_special_tokens=True)["input_ids"]) for t in texts)


@pytest.mark.parametrize("kind", ["wiki", "cue"])
def test_a_1_mb_line_without_sentence_ends_is_read_whole(
    tmp_path: Path, embedder, kind: str
) -> None:  # type: ignore[no-untyped-def]
    # ~1 MB of the seed page's own words, with every sentence end taken out.
    vocab = re.findall(r"[a-z]+", SEED.read_text(encoding="utf-8").lower())
    words = " ".join(vocab[i % len(vocab)] for i in range(170_000))
    if kind == "wiki":
        path = tmp_path / "line.txt"
        path.write_text(f"From: c\nOne line\n{words}\n")
    else:
        path = tmp_path / "line.vtt"
        path.write_text(f"WEBVTT\n\n00:01:00.000 --> 00:59:00.000\n{words}\n")
    raw = path.read_text()
    tracemalloc.start()
    (doc,) = load([path]).documents
    ps = make_passages(doc)
    units = model_windows(doc) if kind == "cue" else ps
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(ps) > 100
    for p in ps:
        for s in p.sentences:
            assert raw[s.start : s.end].split() == s.text.split()  # offsets kept
            if kind == "cue":
                assert s.time is not None and s.time.seconds == 60 and s.time.exact
    from index.vectors import embed_input

    assert _pieces(embedder, [embed_input(u)[0] for u in units]) <= 256  # read whole
    print(f"\n1 MB line ({kind}): {len(ps)} passages, parse+chunk peak {peak / 1e6:.0f} MB")


def test_a_page_of_10000_paragraphs_has_bounded_memory(tmp_path: Path) -> None:
    page = tmp_path / "long.txt"
    paras = [f"Paragraph {i} says something about sleep and light [00:{i % 60:02d}:10]."
             for i in range(10_000)]  # fmt: skip
    page.write_text("From: c\nLong page\n" + "\n\n".join(paras) + "\n")
    size = page.stat().st_size
    tracemalloc.start()
    (doc,) = load([page]).documents
    ps = make_passages(doc)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(ps) == 10_000
    assert peak < 200 * size  # linear in the file, not worse
    print(f"\n10,000 paragraphs ({size / 1e6:.1f} MB): parse+chunk peak {peak / 1e6:.0f} MB")
