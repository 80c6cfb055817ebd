"""Ingest's stages: a bar each on a terminal, plain lines in a log (pure logic)."""

from __future__ import annotations

import io

from rich.console import Console

from server.progress import Stages


def _run(terminal: bool, quiet_s: float = 0.0) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=120)
    with Stages(console, quiet_s) as stages:
        for done in range(0, 9):
            stages.update("embedding", done, 8, "passages")
        stages.finish("embedding")
        stages.update("downloading ep.mp3", 1.5, None, "MB")  # no length known
        stages.update("downloading ep.mp3", 3.0, None, "MB")
        stages.finish("downloading ep.mp3")
        stages.finish("never started")  # nothing to say
        stages.update("writing", 3, 7, "steps")  # ended by leaving the block
    return out.getvalue()


def test_plain_lines_when_not_a_terminal() -> None:
    lines = _run(terminal=False).splitlines()
    assert lines[0] == "embedding: 8 passages"
    assert lines[1:4] == [
        "embedding: 2/8 passages (25%)",
        "embedding: 4/8 passages (50%)",
        "embedding: 6/8 passages (75%)",
    ]
    assert lines[4].startswith("embedding: 8 passages in ") and lines[4].endswith(" s")
    assert lines[5] == "downloading ep.mp3"
    assert lines[6].startswith("downloading ep.mp3: 3 MB in ")
    assert lines[7:9] == ["writing: 7 steps", "writing: 3/7 steps (43%)"]
    assert lines[9].startswith("writing: 7 steps in ")  # ended by leaving the block
    assert len(lines) == 10


def test_one_bar_per_stage_on_a_terminal() -> None:
    text = _run(terminal=True)
    assert "\x1b[" in text  # drawn, not printed as lines
    assert "8/8" in text and "embedding" in text and "downloading ep.mp3" in text
    assert "0/?" not in text and "never started" not in text


def test_a_short_stage_gets_two_lines() -> None:
    lines = _run(terminal=False, quiet_s=60.0).splitlines()
    assert [x.split(" in ")[0] for x in lines] == [
        "embedding: 8 passages",
        "embedding: 8 passages",
        "downloading ep.mp3",
        "downloading ep.mp3: 3 MB",
        "writing: 7 steps",
        "writing: 7 steps",
    ]


def test_a_failure_ends_no_stage_as_done() -> None:
    out = io.StringIO()
    try:
        with Stages(Console(file=out, force_terminal=False), 0.0) as stages:
            stages.update("embedding", 3, 8, "passages")
            raise RuntimeError("killed")
    except RuntimeError:
        pass
    assert " in " not in out.getvalue()
