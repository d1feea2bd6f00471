"""A tiny timing harness shared by the benchmark scripts: every figure round-robin.

Every timed case is taken in rounds: a round runs each case of a group once,
in a shuffled order, and takes each case's ratio (and difference) to its
baseline *in that round*, so that load on the shared machine moves case and
baseline together. The rounds are split into ``runs`` (3 by default) with the
load average read at the start of each; a case keeps the median of its
per-round times and the min and median of its per-round ratios.

* :meth:`Suite.ladder` times a group of cases against one baseline.
* :meth:`Suite.time` times one case; given a ``baseline`` (a case timed
  before), it times the case round-robin against that baseline again.
* :meth:`Suite.sample` is :meth:`Suite.time` for a case that measures itself
  (an event loop, a fresh interpreter): its function returns the seconds one
  round took per call.
* :meth:`Suite.derive` records a figure computed from a timed one (per
  element, per row), keeping its ratios.

Ratios are what to quote: the machines are shared and noisy. A figure that
moves with load says so in its note.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: One round of a case: returns the seconds per call it measured.
Sampler = Callable[[], float]

#: Rounds are split into this many runs; the load average is read before each.
RUNS = 3


@dataclass
class Result:
    """One timed case: its median seconds per call, and its baseline's name.

    A case with a baseline also carries the min and median of its per-round
    ratios to it, and the median per-round difference (seconds).
    """

    name: str
    seconds: float
    baseline: str | None = None
    note: str = ""
    ratio_min: float | None = None
    ratio_median: float | None = None
    difference: float | None = None


def _timer(fn: Callable[[], object], number: int, clock: Callable[[], float]) -> Sampler:
    """A sampler calling *fn* *number* times; seconds per call by *clock*."""

    def sample() -> float:
        start = clock()
        for _ in range(number):
            fn()
        return (clock() - start) / number

    return sample


#: The clock for work that stays on the calling thread: its CPU time, so that
#: time the scheduler gives other processes on a shared machine is not counted.
CPU = time.thread_time
#: The clock for work that waits (I/O, other processes, threads): wall time.
WALL = time.perf_counter


@dataclass
class Suite:
    """Results of one benchmark script, printed as a markdown table."""

    title: str
    results: list[Result] = field(default_factory=list)
    #: The highest 1-minute load average seen while this suite timed.
    load: float | None = None
    #: What :meth:`time` and :meth:`ladder` read: :data:`WALL` or :data:`CPU`.
    clock: Callable[[], float] = WALL
    #: What the table says was timed, when the cases measure themselves.
    timing: str | None = None
    _samplers: dict[str, Sampler] = field(default_factory=dict)

    def _round_robin(
        self, cases: dict[str, Sampler], rounds: int, runs: int
    ) -> tuple[dict[str, list[float]], list[dict[str, float]]]:
        """Each case's per-round seconds, and every round's seconds by case."""
        for sample in cases.values():
            sample()  # warm up: imports, caches, first-call paths
        times: dict[str, list[float]] = {name: [] for name in cases}
        all_rounds: list[dict[str, float]] = []
        loads = []
        gc_was = gc.isenabled()
        gc.disable()
        try:
            for _ in range(runs):
                loads.append(os.getloadavg()[0])
                for _ in range(rounds):
                    order = list(cases)
                    random.shuffle(order)
                    got = {name: cases[name]() for name in order}
                    for name, seconds in got.items():
                        times[name].append(seconds)
                    all_rounds.append(got)
        finally:
            if gc_was:
                gc.enable()
        self.load = max([*loads, *([] if self.load is None else [self.load])])
        return times, all_rounds

    def _record(
        self,
        name: str,
        times: list[float],
        rounds: list[dict[str, float]],
        baseline: str | None,
        note: str,
    ) -> Result:
        ratio_min = ratio_median = difference = None
        if baseline is not None:
            ratios = [got[name] / got[baseline] for got in rounds]
            ratio_min, ratio_median = min(ratios), statistics.median(ratios)
            difference = statistics.median(got[name] - got[baseline] for got in rounds)
        result = Result(
            name, statistics.median(times), baseline, note, ratio_min, ratio_median, difference
        )
        self.results.append(result)
        return result

    def sample(
        self,
        name: str,
        sampler: Sampler,
        *,
        repeat: int = 15,
        baseline: str | None = None,
        note: str = "",
        runs: int = RUNS,
    ) -> Result:
        """Time a case measured by *sampler*, round-robin against *baseline* if given.

        *repeat* rounds in all, split into *runs*; the baseline (a case timed
        before in this suite) is timed again in the same rounds.
        """
        self._samplers[name] = sampler
        cases = {name: sampler}
        fixed = None
        if baseline is not None:
            if baseline in self._samplers:
                cases[baseline] = self._samplers[baseline]
            else:  # a figure recorded with add(): measured elsewhere, so it cannot move
                fixed = self.get(baseline).seconds
        times, rounds = self._round_robin(cases, max(1, math.ceil(repeat / runs)), runs)
        if fixed is not None:
            for got in rounds:
                got[baseline] = fixed
        return self._record(name, times[name], rounds, baseline, note)

    def time(
        self,
        name: str,
        fn: Callable[[], object],
        *,
        number: int = 10_000,
        repeat: int = 15,
        baseline: str | None = None,
        note: str = "",
        runs: int = RUNS,
        clock: Callable[[], float] | None = None,
    ) -> Result:
        """Time ``fn()``: *number* calls per round by *clock* (the suite's); see :meth:`sample`."""
        return self.sample(
            name,
            _timer(fn, number, clock or self.clock),
            repeat=repeat,
            baseline=baseline,
            note=note,
            runs=runs,
        )

    def ladder(
        self,
        cases: dict[str, Callable[[], object]],
        *,
        baseline: str,
        number: int = 2_000,
        rounds: int = 15,
        runs: int = RUNS,
        notes: dict[str, str] | None = None,
    ) -> list[Result]:
        """Time *cases* round-robin; ratios to *baseline* per round (see the module)."""
        samplers = {name: _timer(fn, number, self.clock) for name, fn in cases.items()}
        self._samplers.update(samplers)
        times, all_rounds = self._round_robin(samplers, rounds, runs)
        return [
            self._record(
                name,
                times[name],
                all_rounds,
                None if name == baseline else baseline,
                (notes or {}).get(name, ""),
            )
            for name in cases
        ]

    def group(
        self,
        cases: list[tuple[str, Callable[[], object], int, str | None]],
        *,
        rounds: int = 5,
        runs: int = RUNS,
        clock: Callable[[], float] | None = None,
    ) -> list[Result]:
        """Time *cases* (name, function, calls per round, baseline) round-robin together.

        Each case's ratios are to its own baseline, a case of the group (or None).
        """
        samplers = {name: _timer(fn, number, clock or self.clock) for name, fn, number, _ in cases}
        self._samplers.update(samplers)
        times, all_rounds = self._round_robin(samplers, rounds, runs)
        return [
            self._record(name, times[name], all_rounds, baseline, "")
            for name, _, _, baseline in cases
        ]

    def add(
        self, name: str, seconds: float, *, baseline: str | None = None, note: str = ""
    ) -> Result:
        """Record a figure measured some other way (say so in *note*)."""
        result = Result(name, seconds, baseline, note)
        self.results.append(result)
        return result

    def derive(
        self, name: str, of: Result, factor: float, *, baseline: str | None = None, note: str = ""
    ) -> Result:
        """Record *of* scaled by *factor* (per row, per element), keeping its ratios.

        *baseline*, if given, must be derived from *of*'s baseline by the same
        factor, so that the ratios carry over.
        """
        keep = baseline is not None
        result = Result(
            name,
            of.seconds * factor,
            baseline,
            note,
            of.ratio_min if keep else None,
            of.ratio_median if keep else None,
            None if of.difference is None or not keep else of.difference * factor,
        )
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
            "| case | median | ratio (median, min of rounds) | note |",
            "| --- | ---: | ---: | --- |",
        ]
        for r in self.results:
            ratio = ""
            if r.ratio_median is not None and r.ratio_min is not None:
                ratio = f"{r.ratio_median:.2f}x (min {r.ratio_min:.2f}x) {r.baseline}"
                if r.difference is not None:
                    ratio += f", {format_difference(r.difference)}"
            elif r.baseline is not None:
                base = self.get(r.baseline)
                ratio = f"{r.seconds / base.seconds:.2f}x {r.baseline}"
            lines.append(f"| {r.name} | {format_seconds(r.seconds)} | {ratio} | {r.note} |")
        if self.load is not None:
            clock = self.timing or (
                "CPU time of the timing thread" if self.clock is CPU else "wall time"
            )
            lines += [
                "",
                f"Round-robin, ratios per round, {RUNS} runs, {clock}; "
                f"load average up to {self.load:.1f}.",
            ]
        return "\n".join(lines)


def format_seconds(seconds: float) -> str:
    """Seconds in the unit that reads best (ns, µs, ms, s)."""
    for unit, scale in (("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3)):
        if seconds < scale * 1000:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def format_difference(seconds: float) -> str:
    """A signed difference, e.g. ``+0.65 µs``."""
    sign = "+" if seconds >= 0 else "-"
    return sign + format_seconds(abs(seconds))


def machine() -> str:
    """One line describing where the figures were taken."""
    return (
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores, {sys.platform}"
    )
