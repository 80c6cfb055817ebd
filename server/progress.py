"""One progress bar per stage of ``podcite ingest``, or plain lines in a log.

Rich draws the bars (``rich.progress``); what this module adds is when a
stage's bar appears and what a log gets instead.  A bar is added only once its
stage has started and its total is known, so none sits at ``0/?``; when stderr
is not a terminal (CI, ``2> log``, a pipe), each stage prints a plain line as it
starts, at every quarter, and when it ends, with its count and time, rather
than rich's redraws, which a log would not show.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

# Plain lines at these fractions of a stage (besides its start and end), for a
# stage that has run at least QUIET_S seconds: a short one gets two lines.
_QUARTERS = (0.25, 0.5, 0.75)
QUIET_S = 2.0


@dataclass
class _Stage:
    unit: str
    total: float | None
    t0: float
    task: Any = None
    done: float = 0.0
    over: bool = False
    said: set[float] = field(default_factory=set)


class Stages:
    """``with Stages(console) as stages: stages.update("embedding", done, total, "passages")``, then
    ``stages.finish("embedding")``."""

    def __init__(self, console: Any, quiet_s: float = QUIET_S) -> None:
        self.console = console
        self.quiet_s = quiet_s
        self.plain = not console.is_terminal
        self._stages: dict[str, _Stage] = {}
        self._bar: Any = None

    def __enter__(self) -> Stages:
        if not self.plain and not self.console.quiet:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                "{task.fields[unit]}",
                "{task.fields[detail]}",
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:  # a clean end ends every stage; after a failure none is "done"
            for name in [n for n, st in self._stages.items() if not st.over]:
                self.finish(name)
        if self._bar is not None:
            self._bar.stop()

    def update(
        self, name: str, done: float, total: float | None, unit: str = "", detail: str = ""
    ) -> None:
        """``done`` of ``total`` ``unit`` of stage ``name`` (``total`` None: not known,
        as for a download without a length); the first call starts the stage."""
        stage = self._stages.get(name)
        if stage is None:
            for other in [n for n, st in self._stages.items() if not st.over]:
                self.finish(other)  # stages run one after another: a new one ends the last
            stage = self._stages[name] = _Stage(unit, total, time.perf_counter())
            if self._bar is not None:
                stage.task = self._bar.add_task(
                    name, total=total, completed=done, unit=unit, detail=detail
                )
            else:
                size = "" if total is None else f"{_count(total)} {unit}"
                self._say(f"{name}: {size}".rstrip(" :"))
        stage.total, stage.done = total, done
        if self._bar is not None:
            self._bar.update(stage.task, completed=done, total=total, detail=detail)
            return
        if time.perf_counter() - stage.t0 < self.quiet_s:
            return
        passed = {q for q in _QUARTERS if total and q <= done / total < 1} - stage.said
        if passed and total:  # one line, however many quarters this update passed
            stage.said |= passed
            self._say(f"{name}: {_count(done)}/{_count(total)} {unit} ({done / total:.0%})")

    def finish(self, name: str, detail: str = "") -> None:
        """Stage ``name`` is over: its bar completes, or its closing line is printed."""
        stage = self._stages.get(name)
        if stage is None or stage.over:
            return
        stage.over = True
        total = stage.done if stage.total is None else stage.total
        seconds = time.perf_counter() - stage.t0
        if self._bar is not None:
            self._bar.update(stage.task, completed=total, total=total, detail=detail)
        else:
            extra = f", {detail}" if detail else ""
            self._say(f"{name}: {_count(total)} {stage.unit} in {seconds:.1f} s{extra}")

    def _say(self, line: str) -> None:
        self.console.print(line, highlight=False, markup=False)


def _count(n: float) -> str:
    return f"{int(n):,}" if float(n).is_integer() else f"{n:,.1f}"
