"""Progress on a terminal: one rich bar on stderr, shared by every command that makes a user wait.

Only for humans: when stderr is not a terminal (a pipe, a log, CI) `terminal_bar` returns None
and each command decides what, if anything, to print instead. rich is imported only when a bar
is actually shown, so importing this module costs nothing on the fast paths (build).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def on_terminal() -> bool:
    """Is stderr a terminal? (Looked up each call: tests swap sys.stderr.)"""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class Bar:
    """A rich progress bar: `label  ━━━━━━━  n/total  rate unit/s  [fields]  eta`.

    `update(done, total, **fields)` starts it on first use (nothing is drawn for work that
    never reports) and may be called from any one thread at a time; `close()` stops it and
    is safe to call twice or when it never started. total=None draws an indeterminate bar.
    `rate` in fields overrides the mean rate since the first update; other fields fill
    their `{name}` columns.
    """

    def __init__(self, label: str, *, unit: str = "", fields: tuple[str, ...] = (),
                 eta: bool = True, transient: bool = False, console: Any = None) -> None:
        self._label, self._unit, self._fields = label, unit, fields
        self._eta, self._transient, self._console = eta, transient, console
        self._progress: Any = None
        self._task: Any = None

    def _start(self, done: int, total: int | None, fields: dict[str, Any]) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        unit = f" {self._unit}" if self._unit else ""

        class RateColumn(ProgressColumn):
            def render(self, task) -> Text:
                rate = task.fields.get("rate")
                if rate is None and task.elapsed:  # the mean since the first update: steadier
                    rate = (task.completed - task.fields["first"]) / task.elapsed
                return Text(f"{rate:,.0f}{unit}/s" if rate else f"-{unit}/s")

        columns = [TextColumn(self._label), BarColumn(), MofNCompleteColumn(), RateColumn()]
        columns += [TextColumn(f"{{task.fields[{name}]}}") for name in self._fields]
        if self._eta:
            columns.append(TimeRemainingColumn())
        self._progress = Progress(*columns, console=self._console or Console(stderr=True),
                                  transient=self._transient)
        # the task before the display, so the first frame already shows the first count
        self._task = self._progress.add_task(
            self._label, total=total, completed=done, first=done,
            **{**dict.fromkeys(self._fields, ""), **fields})
        self._progress.start()

    def update(self, done: int, total: int | None = None, **fields: Any) -> None:
        if self._progress is None:
            self._start(done, total, fields)
        self._progress.update(self._task, completed=done, total=total, **fields)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def terminal_bar(label: str, **options: Any) -> Bar | None:
    """A `Bar` on stderr when it is a terminal, else None (print nothing extra)."""
    return Bar(label, **options) if on_terminal() else None


@contextmanager
def terminal_progress(label: str, **options: Any) -> Iterator[Callable[..., None] | None]:
    """`with terminal_progress(...) as progress:` gives a library's `progress(done, total)`
    callback drawing a bar on a terminal (closed afterwards), or None elsewhere."""
    bar = terminal_bar(label, **options)
    try:
        yield bar.update if bar else None
    finally:
        if bar:
            bar.close()
