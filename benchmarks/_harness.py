"""A tiny timing harness shared by the benchmark scripts.

:meth:`Suite.time` times one case as ``repeat`` rounds of ``number`` calls and
keeps the median per-call time. :meth:`Suite.ladder` times several cases
round-robin: every round runs each case once, in a shuffled order, and takes
each case's ratio to the baseline *in that round*, so that load on the shared
machine moves case and baseline together; it repeats the whole thing in
several runs and keeps the min and median of the per-round ratios, with the
load average seen. Ratios are what to quote: the machines are shared and noisy.
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
    """One timed case: its median seconds per call, and its baseline's name.

    Cases timed by :meth:`Suite.ladder` also carry the min and median of their
    per-round ratios to the baseline.
    """

    name: str
    seconds: float
    baseline: str | None = None
    note: str = ""
    ratio_min: float | None = None
    ratio_median: float | None = None


@dataclass
class Suite:
    """Results of one benchmark script, printed as a markdown table."""

    title: str
    results: list[Result] = field(default_factory=list)
    #: The highest 1-minute load average seen while a ladder ran.
    load: float | None = None

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

    def ladder(
        self,
        cases: dict[str, Callable[[], object]],
        *,
        baseline: str,
        number: int = 2_000,
        rounds: int = 15,
        runs: int = 3,
        notes: dict[str, str] | None = None,
    ) -> list[Result]:
        """Time *cases* round-robin; ratios to *baseline* per round (see the module)."""
        import random

        for fn in cases.values():
            fn()  # warm up
        times: dict[str, list[float]] = {name: [] for name in cases}
        ratios: dict[str, list[float]] = {name: [] for name in cases}
        loads = []
        gc_was = gc.isenabled()
        gc.disable()
        try:
            for _ in range(runs):
                loads.append(os.getloadavg()[0])
                for _ in range(rounds):
                    order = list(cases)
                    random.shuffle(order)
                    got = {}
                    for name in order:
                        fn = cases[name]
                        start = time.perf_counter()
                        for _ in range(number):
                            fn()
                        got[name] = (time.perf_counter() - start) / number
                    for name, seconds in got.items():
                        times[name].append(seconds)
                        ratios[name].append(seconds / got[baseline])
        finally:
            if gc_was:
                gc.enable()
        self.load = max(loads)
        out = []
        for name in cases:
            result = Result(
                name,
                statistics.median(times[name]),
                None if name == baseline else baseline,
                (notes or {}).get(name, ""),
                None if name == baseline else min(ratios[name]),
                None if name == baseline else statistics.median(ratios[name]),
            )
            self.results.append(result)
            out.append(result)
        return out

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
            if r.ratio_median is not None and r.ratio_min is not None:
                ratio = f"{r.ratio_median:.2f}x (min {r.ratio_min:.2f}x) {r.baseline}"
            elif r.baseline is not None:
                base = self.get(r.baseline)
                ratio = f"{r.seconds / base.seconds:.2f}x {r.baseline}"
            lines.append(f"| {r.name} | {format_seconds(r.seconds)} | {ratio} | {r.note} |")
        if self.load is not None:
            lines += ["", f"Round-robin, ratios per round; load average up to {self.load:.1f}."]
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
