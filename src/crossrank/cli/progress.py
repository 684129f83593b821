"""Progress on stderr for long steps: a rich bar on a terminal, a plain line every few seconds elsewhere.

``pair_progress(enabled, label, total)`` yields a callable ``advance(n)`` that counts work done (scored pairs,
embedded documents, ...). ``enabled`` is True (or None, "not switched off") to show progress and False to
show none. Where stderr is a terminal the progress is a rich bar; where it is not (a log file, a pipe, a
CI job) a background thread prints one line every ``CROSSRANK_PROGRESS_INTERVAL`` seconds (default 5)::

    crossrank: reranking: 1,200/5,400 pairs (22%), 45 pairs/s, 1m02s elapsed, about 1m33s left

A step shorter than the interval prints nothing; one that printed ends with a last line of its totals.
``advance.stage(label, total, unit)`` starts the next step of a longer job (BM25 indexing, then embedding).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Callable, Iterator

INTERVAL_ENV = "CROSSRANK_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 5.0


class Progress:
    """What ``pair_progress`` yields: call it with a count; ``stage`` starts the next step."""

    def __call__(self, n: int) -> None:
        pass

    def stage(self, label: str, total: int | None = None, unit: str | None = None) -> None:
        pass

    def close(self) -> None:
        pass


class _LineProgress(Progress):
    """One plain line per interval on stderr, from a daemon thread (so a step with no counts still shows)."""

    def __init__(self, label: str, total: int | None, unit: str, interval: float):
        self.interval = interval
        self._lock = threading.Lock()
        self._unit = unit
        self._begin(label, total, unit)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="crossrank-progress", daemon=True)
        self._thread.start()

    def _begin(self, label: str, total: int | None, unit: str | None) -> None:
        self.label, self.total, self.done = label, total, 0
        self._unit = unit or self._unit
        self._started = time.monotonic()
        self._next = self._started + self.interval  # a new step's first line comes one interval in
        self._printed = False

    def __call__(self, n: int) -> None:
        self.done += n

    def stage(self, label: str, total: int | None = None, unit: str | None = None) -> None:
        with self._lock:
            self._finish_line()
            self._begin(label, total, unit)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        with self._lock:
            self._finish_line()

    def _tick(self) -> None:
        while not self._stop.wait(max(0.0, self._next - time.monotonic())):
            with self._lock:
                now = time.monotonic()
                if now < self._next:  # a step began while this thread waited
                    continue
                self._write()
                self._printed = True
                self._next = now + self.interval

    def _finish_line(self) -> None:
        if self._printed:  # a step that showed progress also shows where it ended
            self._write()

    def _write(self) -> None:
        elapsed = time.monotonic() - self._started
        done, total, unit = self.done, self.total, self._unit
        parts = []
        if total:
            parts.append(f"{done:,}/{total:,} {unit} ({min(100, int(100 * done / total))}%)")
        elif done:
            parts.append(f"{done:,} {unit}")
        if elapsed > 0 and done:
            rate = done / elapsed
            parts.append(f"{rate:,.0f} {unit}/s" if rate >= 10 else f"{rate:.2g} {unit}/s")
        parts.append(f"{_duration(elapsed)} elapsed")
        text = ", ".join(parts)
        if total and done and done < total:
            text += f", about {_duration(elapsed * (total - done) / done)} left"
        try:
            print(f"crossrank: {self.label}: {text}", file=sys.stderr, flush=True)
        except (OSError, ValueError):  # stderr closed: progress is not worth failing the job
            pass


class _BarProgress(Progress):
    def __init__(self, label: str, total: int | None, unit: str):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[unit]}"), TimeElapsedColumn()]
        self._unit = unit
        self._bar = RichProgress(*columns, console=Console(stderr=True), transient=False)
        self._bar.start()
        self._task = self._bar.add_task(label, total=total, unit=unit)

    def __call__(self, n: int) -> None:
        self._bar.advance(self._task, n)

    def stage(self, label: str, total: int | None = None, unit: str | None = None) -> None:
        self._unit = unit or self._unit
        self._task = self._bar.add_task(label, total=total, unit=self._unit)

    def close(self) -> None:
        self._bar.stop()


def progress_interval() -> float:
    """Seconds between progress lines off a terminal: ``CROSSRANK_PROGRESS_INTERVAL``, default 5."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def make_progress(enabled: bool | None, label: str, total: int | None = None, unit: str = "pairs",
                  interval: float | None = None) -> Progress:
    """A started progress display (call ``close()`` at the end); ``pair_progress`` wraps it in a context."""
    if enabled is False:
        return Progress()
    if _stderr_is_terminal():
        return _BarProgress(label, total, unit)
    return _LineProgress(label, total, unit, progress_interval() if interval is None else interval)


@contextlib.contextmanager
def pair_progress(enabled: bool | None, label: str, total: int | None = None, unit: str = "pairs",
                  interval: float | None = None) -> Iterator[Callable[[int], None]]:
    """Count work on stderr while the block runs (``enabled`` False: nothing; True or None: shown)."""
    progress = make_progress(enabled, label, total, unit, interval)
    try:
        yield progress
    finally:
        progress.close()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
