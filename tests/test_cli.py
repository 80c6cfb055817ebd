"""The podcite command, end to end, in subprocesses like a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import CORPUS, ROOT


def podcite(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_help_does_not_import_torch() -> None:
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "server.cli", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 0 and "ingest" in r.stdout and "serve" in r.stdout
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "torch" not in imported and "faiss" not in imported


def test_ingest_then_ask(tmp_path: Path) -> None:
    index = tmp_path / "index"
    r = podcite("ingest", str(CORPUS), "--index", str(index))
    assert r.returncode == 0, r.stderr
    assert "indexed 1 documents, 8 passages" in r.stderr
    # Not a terminal: one plain line per stage as it starts and ends, no
    # redrawn bars, and not the model library's own loading bar.
    lines = r.stderr.splitlines()
    for stage, unit in (("parsing", "documents"), ("embedding", "passages"), ("writing", "steps")):
        assert any(x.startswith(f"{stage}: ") and f"{unit} in " in x for x in lines), stage
    assert "Loading weights" not in r.stderr and "0/?" not in r.stderr
    assert "\r" not in r.stderr and "\x1b[" not in r.stderr
    r = podcite(
        "ask",
        "Who found a one to three hertz rhythm under ketamine?",
        "--index",
        str(index),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert "Vesuna" in body["answer"][0]["text"]
    assert body["answer"][0]["url"].endswith("&t=4984s")
    r = podcite("ask", "psilocybin", "--index", str(index), "-k", "2")
    assert r.returncode == 0 and "1:26:21" in r.stdout


def test_errors_are_one_line_with_exit_code(tmp_path: Path) -> None:
    r = podcite("ask", "anything", "--index", str(tmp_path / "missing"))
    assert r.returncode == 1
    assert "no index at" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe")
    r = podcite("ingest", str(bad), "--index", str(tmp_path / "idx"))
    assert r.returncode == 1 and "no documents to index" in r.stderr and "bad.txt:1" in r.stderr
    r = podcite("ingest", str(CORPUS), str(bad), "--index", str(tmp_path / "idx"), "--strict")
    assert r.returncode == 1 and "--strict" in r.stderr
    assert not (tmp_path / "idx").exists()


def test_help_shows_defaults_and_no_type_noise() -> None:
    for command in ("ask", "serve", "ingest"):
        r = podcite(command, "--help")
        text = " ".join(r.stdout.split())  # click wraps at 80 columns
        assert r.returncode == 0
        assert "<bool>" not in text and "Index directory ." not in text
        assert "[default: PODCITE_INDEX_DIR or data/index]" in text
    assert "[default: 8000]" in podcite("serve", "--help").stdout


def test_empty_question_fails_before_anything_heavy_loads(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "server.cli", "ask", " ", "--index", "x"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 1 and "the question is empty" in r.stderr
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "torch" not in imported and "faiss" not in imported


def test_ask_open_opens_the_first_moment(seed_index_dir: Path, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    # webbrowser runs $BROWSER with the URL in place of %s: a fake browser that writes it down
    fake = f"{sys.executable} -c \"import sys; open(r'{opened}', 'w').write(sys.argv[1])\" %s"
    r = podcite(
        "ask",
        "Who found a one to three hertz rhythm under ketamine?",
        "--index",
        str(seed_index_dir),
        "--open",
        env={"BROWSER": fake},
    )
    assert r.returncode == 0, r.stderr
    assert opened.read_text() == "https://www.youtube.com/watch?v=Xu1FMCxoEFc&t=4984s"
    assert "Vesuna" in r.stdout


def test_ask_links_are_terminal_hyperlinks_where_supported(seed_index_dir: Path) -> None:
    r = podcite(
        "ask",
        "Who found a one to three hertz rhythm under ketamine?",
        "--index",
        str(seed_index_dir),
        env={"FORCE_COLOR": "1", "TERM": "xterm-256color", "COLUMNS": "200"},
    )
    assert r.returncode == 0, r.stderr
    # OSC 8: ESC ] 8 ; params ; URL ESC \  text  ESC ] 8 ; ; ESC \
    assert (
        "\x1b]8;" in r.stdout
        and "https://www.youtube.com/watch?v=Xu1FMCxoEFc&t=4984s\x1b\\" in r.stdout
    )
    plain = podcite("ask", "psilocybin", "--index", str(seed_index_dir), "-k", "1")
    assert "\x1b]8;" not in plain.stdout  # not a terminal: plain text and the URL


def test_strict_lists_every_problem_and_does_not_count_notes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe")
    empty = tmp_path / "empty.md"
    empty.write_text("", encoding="utf-8")
    repaired = tmp_path / "repaired.vtt"  # one cue without a timing line: repaired, a warning
    repaired.write_text(
        "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nThe first cue says enough words here.\n\n"
        "no timing here\nThis block is dropped.\n",
        encoding="utf-8",
    )
    # No catalog names this transcript: a note, not a problem.
    noted = tmp_path / "noted.vtt"
    noted.write_text(
        "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nA transcript no catalog names.\n",
        encoding="utf-8",
    )
    idx = tmp_path / "idx"
    r = podcite(
        "ingest",
        str(CORPUS),
        str(bad),
        str(empty),
        str(repaired),
        str(noted),
        "--index",
        str(idx),
        "--strict",
    )
    assert r.returncode == 1 and not idx.exists()
    head = [x for x in r.stderr.splitlines() if "--strict" in x]
    assert head and "2 error(s), 1 warning(s); 2 note(s) not counted" in head[0], r.stderr
    assert "bad.txt:1" in r.stderr and "empty.md:1" in r.stderr  # every error
    assert "repaired.vtt:6" in r.stderr and "block dropped" in r.stderr  # and the warning
    assert "Traceback" not in r.stderr
    # Notes alone do not fail --strict; the summary counts them apart.
    r = podcite("ingest", str(CORPUS), str(noted), "--index", str(idx), "--strict")
    assert r.returncode == 0, r.stderr
    assert "0 errors (skipped), 0 warnings, 1 notes" in r.stderr
    assert "note " in r.stderr and "noted.vtt:1: no catalog entry" in r.stderr
