"""Progress for long commands: a rich bar on a terminal, a few plain lines elsewhere."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from outreach.cli._common import console


class Watch:
    """``with Watch("enqueueing", total=n) as watch: watch.update(done, detail)``.

    On a terminal it draws a live bar with ``done/total`` and the caller's detail (counts by
    status, rate, ETA); elsewhere (a pipe, a log file, a test) it prints a plain line to
    standard error each time another tenth of the work is done, and at the end. ``enabled=False``
    shows nothing (``--json``: the result alone on standard output).
    """

    def __init__(self, description: str, *, total: float, enabled: bool = True) -> None:
        self._description = description
        self._total = total
        self._enabled = enabled
        self._console: Console = console(stderr=True)
        self._live = enabled and self._console.is_terminal
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._shown = -1
        self._last: tuple[float, str] = (0.0, "")

    def __enter__(self) -> Self:
        if self._live:
            self._progress = Progress(
                TextColumn(self._description, markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}", markup=False),
                console=self._console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self._description, total=self._total, detail="")
        return self

    def update(self, done: float, detail: str = "", *, total: float | None = None) -> None:
        """Show that ``done`` of the total is done (``total``: a new total), with ``detail``."""
        if total is not None:
            self._total = total
        self._last = (done, detail)
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, total=self._total, detail=detail)
            return
        tenth = int(10 * done / self._total) if self._total else 10
        if self._enabled and tenth > self._shown:
            self._shown = tenth
            self._line(done, detail)

    def _line(self, done: float, detail: str) -> None:
        shown = f"{self._description}: {done:,.0f} of {self._total:,.0f}"
        self._console.print(shown + (f" ({detail})" if detail else ""), markup=False)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
        elif self._enabled and self._shown < 10 and self._last != (0.0, ""):
            self._line(*self._last)
