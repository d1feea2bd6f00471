"""A tiny timing harness shared by the benchmark scripts.

Each case is timed as ``repeat`` rounds of ``number`` calls; the figure kept is
the median per-call time over the rounds. Ratios are taken against a baseline
measured in the same run, because the machines are shared and noisy.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    """One timed case: its median seconds per call, and its baseline's name."""

    name: str
    seconds: float
    baseline: str | None = None
    note: str = ""


@dataclass
class Suite:
    """Results of one benchmark script, printed as a markdown table."""

    title: str
    results: list[Result] = field(default_factory=list)

    def time(
        self,
        name: str,
        fn: Callable[[], object],
        *,
        number: int = 10_000,
        repeat: int = 15,
        baseline: str | None = None,
        note: str = "",
    ) -> Result:
        """Time ``fn()``; keep the median seconds per call over *repeat* rounds."""
        fn()  # warm up: imports, caches, first-call paths
        rounds = []
        gc_was = gc.isenabled()
        gc.disable()
        try:
            for _ in range(repeat):
                start = time.perf_counter()
                for _ in range(number):
                    fn()
                rounds.append((time.perf_counter() - start) / number)
        finally:
            if gc_was:
                gc.enable()
        result = Result(name, statistics.median(rounds), baseline, note)
        self.results.append(result)
        return result

    def add(
        self, name: str, seconds: float, *, baseline: str | None = None, note: str = ""
    ) -> Result:
        """Record a figure measured some other way (a whole run, say)."""
        result = Result(name, seconds, baseline, note)
        self.results.append(result)
        return result

    def get(self, name: str) -> Result:
        """The result called *name*."""
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)

    def table(self) -> str:
        """The results as a markdown table: median and ratio to the baseline."""
        lines = [
            f"### {self.title}",
            "",
            "| case | median | ratio | note |",
            "| --- | ---: | ---: | --- |",
        ]
        for r in self.results:
            ratio = ""
            if r.baseline is not None:
                base = self.get(r.baseline)
                ratio = f"{r.seconds / base.seconds:.2f}x {r.baseline}"
            lines.append(f"| {r.name} | {format_seconds(r.seconds)} | {ratio} | {r.note} |")
        return "\n".join(lines)


def format_seconds(seconds: float) -> str:
    """Seconds in the unit that reads best (ns, µs, ms, s)."""
    for unit, scale in (("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3)):
        if seconds < scale * 1000:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def machine() -> str:
    """One line describing where the figures were taken."""
    return (
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores, {sys.platform}"
    )
