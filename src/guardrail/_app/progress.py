"""A progress bar on stderr, with no dependency: redrawn in place on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """A bar of *total* steps; call :meth:`update` as work is done, :meth:`close` at the end.

    On a terminal the bar is redrawn in place at most ten times a second;
    elsewhere (a log file, a pipe) one line is written when it closes, so
    logs stay readable.
    """

    def __init__(
        self,
        total: float,
        label: str,
        *,
        stream: TextIO | None = None,
        unit: str = "",
        width: int = 28,
    ) -> None:
        self.total = max(float(total), 1.0)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.unit = unit
        self.width = width
        self.done = 0.0
        self.note = ""
        self._start = time.perf_counter()
        self._drawn = 0.0
        isatty = getattr(self.stream, "isatty", None)
        self._live = bool(isatty and isatty())

    def update(self, done: float, note: str = "") -> None:
        """Set the amount done so far (and a short note shown after the bar)."""
        self.done = min(float(done), self.total)
        if note:
            self.note = note
        if not self._live:
            return
        now = time.perf_counter()
        if now - self._drawn >= 0.1 or self.done >= self.total:
            self._drawn = now
            self.stream.write("\r" + self._line() + "\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        """Draw the bar as it stands and end its line."""
        end = "\r" + self._line() + "\x1b[K\n" if self._live else self._line() + "\n"
        self.stream.write(end)
        self.stream.flush()

    def _line(self) -> str:
        share = self.done / self.total
        filled = int(share * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self._start
        unit = f" {self.unit}" if self.unit else ""
        note = f"  {self.note}" if self.note else ""
        return (
            f"{self.label} [{bar}] {share:4.0%} {_count(self.done)}/{_count(self.total)}{unit} "
            f"{elapsed:.1f}s{note}"
        )


def _count(value: float) -> str:
    return f"{int(value):,}"
