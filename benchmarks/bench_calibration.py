"""Calibration of drift verdicts: false alarms on no-drift data, power on faults.

Run: ``python benchmarks/bench_calibration.py`` (about ten minutes on a
shared 2-core machine; ``--quick`` for a smaller run), or
``python benchmarks/run.py --only calibration --timeout 1800``. Seeded: the
same command prints the same tables (timings aside).

Data: the real data sets bundled with scikit-learn (no download): diabetes
(442 rows, 10 features), wine (178, 13 + the class as a category), breast
cancer (569, 30), digits (1,797, 64 heaped integer pixels) and iris (150, 4
+ the class). Each data set is the population: a no-drift pair of samples
is a random split of it when both sides fit (2n <= rows), otherwise two
independent draws with replacement (the larger sizes, up to 100,000 rows
per side, are bootstrap draws of the data set: still exactly no drift).

Stated rates: ``DriftThresholds().false_alarm`` = 1 % of comparisons warn,
0.1 % alert, whatever the size; a window is a false alarm when any feature
warns. The table prints the observed rate per window and per feature, and a
one-sided 95 % upper bound of the window rate (Clopper-Pearson) to compare
with the stated rate.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import guardrail as gr
from guardrail.skew import DriftThresholds

SEED = 20_261_204
SIZES = (50, 100, 200, 500, 1_000, 2_000, 5_000, 20_000, 100_000)
WINDOWS = (100, 300, 1_000, 3_000, 10_000)
REFERENCE_ROWS = 100_000


def datasets() -> dict[str, dict[str, Any]]:
    """Columns of each bundled data set (the class as a string category where there is one)."""
    from sklearn import datasets as sk

    out: dict[str, dict[str, Any]] = {}
    for name, loader, with_class in (
        ("diabetes", sk.load_diabetes, False),
        ("wine", sk.load_wine, True),
        ("breast_cancer", sk.load_breast_cancer, False),
        ("digits", sk.load_digits, False),
        ("iris", sk.load_iris, True),
    ):
        bunch = loader()
        data = np.asarray(bunch.data, dtype=np.float64)
        names = [f"x{j}" for j in range(data.shape[1])]
        columns: dict[str, Any] = {n: data[:, j] for j, n in enumerate(names)}
        if with_class:
            columns["class"] = np.array([f"c{int(t)}" for t in bunch.target], dtype=object)
        out[name] = columns
    return out


def draw(columns: dict[str, Any], rows: int, rng: np.random.Generator) -> dict[str, Any]:
    size = len(next(iter(columns.values())))
    index = rng.integers(0, size, rows)
    return {n: c[index] for n, c in columns.items()}


def split(
    columns: dict[str, Any], rows: int, rng: np.random.Generator
) -> tuple[dict[str, Any], dict[str, Any]]:
    size = len(next(iter(columns.values())))
    if 2 * rows <= size:
        order = rng.permutation(size)
        a, b = order[:rows], order[rows : 2 * rows]
        return {n: c[a] for n, c in columns.items()}, {n: c[b] for n, c in columns.items()}
    return draw(columns, rows, rng), draw(columns, rows, rng)


def upper95(alarms: int, trials: int) -> float:
    """One-sided 95 % Clopper-Pearson upper bound of a rate (by bisection)."""
    if alarms >= trials:
        return 1.0

    def at_most(rate: float) -> float:
        return sum(
            math.comb(trials, i) * rate**i * (1 - rate) ** (trials - i) for i in range(alarms + 1)
        )

    low, high = alarms / trials, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        if at_most(mid) > 0.05:
            low = mid
        else:
            high = mid
    return high


def verdicts(
    reference: gr.Profile, serving: dict[str, Any], thresholds: DriftThresholds
) -> tuple[str, int, int]:
    profile = gr.Profile.from_columns(serving, like=reference)
    report = gr.compare(reference, profile, thresholds=thresholds)
    flagged = sum(f.severity != "ok" for f in report.features)
    return report.severity, flagged, len(report.features)


def no_drift(data: dict[str, dict[str, Any]], reps: int, rng: np.random.Generator) -> list[str]:
    lines = [
        "### No drift, equal sides",
        "",
        f"{reps} pairs per data set and size ({len(data)} data sets); stated: 1 % warn, "
        "0.1 % alert per comparison. 'fixed levels' is the same comparison without the "
        "evidence test (`false_alarm=None`, the earlier behaviour).",
        "",
        "| rows per side | windows | warn (≥) | alert | 95 % upper bound, warn | features "
        "flagged | fixed levels: warn windows | fixed levels: features flagged |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    fixed = DriftThresholds(false_alarm=None)
    stated = DriftThresholds()
    for rows in SIZES:
        windows = warn = alert = flagged = features = 0
        fixed_warn = fixed_flagged = 0
        for columns in data.values():
            for _ in range(reps):
                a, b = split(columns, rows, rng)
                reference = gr.Profile.from_columns(a)
                severity, count, width = verdicts(reference, b, stated)
                windows += 1
                warn += severity != "ok"
                alert += severity == "alert"
                flagged += count
                features += width
                severity, count, _ = verdicts(reference, b, fixed)
                fixed_warn += severity != "ok"
                fixed_flagged += count
        lines.append(
            f"| {rows:,} | {windows} | {warn / windows:.1%} | {alert / windows:.1%} | "
            f"{upper95(warn, windows):.1%} | {flagged / features:.2%} | "
            f"{fixed_warn / windows:.0%} | {fixed_flagged / features:.1%} |"
        )
    return lines


def small_windows(
    data: dict[str, dict[str, Any]], reps: int, rng: np.random.Generator
) -> list[str]:
    lines = [
        "### No drift, a serving window against a large reference",
        "",
        f"Reference: {REFERENCE_ROWS:,} rows drawn with replacement; {reps} windows per data "
        "set and size.",
        "",
        "| window rows | windows | warn (≥) | alert | 95 % upper bound, warn | features "
        "flagged | insufficient data | fixed levels: warn windows |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    references = {
        name: gr.Profile.from_columns(draw(columns, REFERENCE_ROWS, rng))
        for name, columns in data.items()
    }
    fixed = DriftThresholds(false_alarm=None)
    stated = DriftThresholds()
    for rows in WINDOWS:
        windows = warn = alert = flagged = features = insufficient = fixed_warn = 0
        for name, columns in data.items():
            reference = references[name]
            for _ in range(reps):
                b = draw(columns, rows, rng)
                profile = gr.Profile.from_columns(b, like=reference)
                report = gr.compare(reference, profile, thresholds=stated)
                windows += 1
                warn += report.severity != "ok"
                alert += report.severity == "alert"
                flagged += sum(f.severity != "ok" for f in report.features)
                features += len(report.features)
                insufficient += report.verdict == "insufficient"
                fixed_warn += gr.compare(reference, profile, thresholds=fixed).severity != "ok"
        lines.append(
            f"| {rows:,} | {windows} | {warn / windows:.1%} | {alert / windows:.1%} | "
            f"{upper95(warn, windows):.1%} | {flagged / features:.2%} | "
            f"{insufficient / windows:.0%} | {fixed_warn / windows:.0%} |"
        )
    return lines


Fault = Callable[[dict[str, Any], str, np.ndarray, np.random.Generator], dict[str, Any]]


def _with(columns: dict[str, Any], name: str, values: Any) -> dict[str, Any]:
    out = dict(columns)
    out[name] = values
    return out


def shift(sd: float) -> Fault:
    def fault(
        columns: dict[str, Any], name: str, population: np.ndarray, rng: np.random.Generator
    ) -> dict[str, Any]:
        return _with(columns, name, columns[name] + sd * float(np.std(population)))

    return fault


def variance_x2(
    columns: dict[str, Any], name: str, population: np.ndarray, rng: np.random.Generator
) -> dict[str, Any]:
    mean = float(np.mean(population))
    return _with(columns, name, mean + math.sqrt(2) * (columns[name] - mean))


def nulls_20(
    columns: dict[str, Any], name: str, population: np.ndarray, rng: np.random.Generator
) -> dict[str, Any]:
    values = np.array(columns[name], dtype=np.float64)
    values[rng.random(len(values)) < 0.2] = np.nan
    return _with(columns, name, values)


def clip_5(
    columns: dict[str, Any], name: str, population: np.ndarray, rng: np.random.Generator
) -> dict[str, Any]:
    return _with(columns, name, np.minimum(columns[name], np.quantile(population, 0.95)))


def unit_change(
    columns: dict[str, Any], name: str, population: np.ndarray, rng: np.random.Generator
) -> dict[str, Any]:
    return _with(columns, name, columns[name] * 2.54)


def missing_column(
    columns: dict[str, Any], name: str, population: np.ndarray, rng: np.random.Generator
) -> dict[str, Any]:
    return _with(columns, name, [None] * len(columns[name]))


FAULTS: dict[str, Fault] = {
    "mean +0.1 SD": shift(0.1),
    "mean +0.25 SD": shift(0.25),
    "mean +0.5 SD": shift(0.5),
    "variance x2": variance_x2,
    "20 % nulls": nulls_20,
    "missing column": missing_column,
    "5 % clip (top)": clip_5,
    "unit change (x2.54)": unit_change,
}


def power(data: dict[str, dict[str, Any]], reps: int, rng: np.random.Generator) -> list[str]:
    sizes = (300, 1_000, 10_000)
    lines = [
        "### Power on injected faults",
        "",
        f"A window of n rows against a {REFERENCE_ROWS:,}-row reference; one feature "
        f"(chosen at random, numeric; the class for a new category) is faulted; {reps} "
        "windows per data set, fault and size. Caught: the faulted feature warns or "
        "alerts. Extra: other features flagged, per window.",
        "",
        "| fault | "
        + " | ".join(f"caught, n={n:,}" for n in sizes)
        + " | extra features flagged (n=10,000) | fixed levels: caught, n=10,000 |",
        "| --- | " + " | ".join("---:" for _ in sizes) + " | ---: | ---: |",
    ]
    references = {
        name: (gr.Profile.from_columns(draw(columns, REFERENCE_ROWS, rng)), columns)
        for name, columns in data.items()
    }
    faults = dict(FAULTS)
    faults["new category"] = lambda columns, name, population, rng: columns  # set below
    for label, fault in faults.items():
        caught = dict.fromkeys(sizes, 0)
        trials = dict.fromkeys(sizes, 0)
        extra = fixed_caught = 0
        fixed = DriftThresholds(false_alarm=None)
        for reference, columns in references.values():
            numeric = [n for n, c in columns.items() if c.dtype != object]
            has_class = "class" in columns
            if label == "new category" and not has_class:
                continue
            for rows in sizes:
                for _ in range(reps):
                    b = draw(columns, rows, rng)
                    if label == "new category":
                        name = "class"
                        values = np.array(b["class"], dtype=object)
                        values[rng.random(rows) < 0.1] = "unseen"
                        b = _with(b, name, values)
                    else:
                        name = numeric[int(rng.integers(len(numeric)))]
                        b = fault(b, name, columns[name], rng)
                    profile = gr.Profile.from_columns(b, like=reference)
                    report = gr.compare(reference, profile)
                    trials[rows] += 1
                    caught[rows] += report[name].severity != "ok"
                    if rows == sizes[-1]:
                        fixed_report = gr.compare(reference, profile, thresholds=fixed)
                        fixed_caught += fixed_report[name].severity != "ok"
                        extra += sum(f.severity != "ok" for f in report.features if f.name != name)
        if not trials[sizes[0]]:
            continue
        cells = " | ".join(f"{caught[n] / trials[n]:.0%}" for n in sizes)
        last = trials[sizes[-1]]
        lines.append(f"| {label} | {cells} | {extra / last:.2f} | {fixed_caught / last:.0%} |")
    lines.append("")
    lines.append("New category: 10 % of the window's class labels replaced by an unseen one.")
    return lines


def lifetime(data: dict[str, dict[str, Any]], checks: int, rng: np.random.Generator) -> list[str]:
    """A monitor checking a stable stream many times, against its lifetime budget."""
    columns = data["diabetes"]
    reference = gr.Profile.from_columns(draw(columns, REFERENCE_ROWS, rng))
    lines = [
        "### A monitor checking a stable stream",
        "",
        f"The diabetes data set (10 features); a {REFERENCE_ROWS:,}-row reference; windows of "
        f"200 rows drawn with replacement (no drift); {checks:,} checks under the lifetime "
        f"budget, {checks // 5:,} under per-check levels.",
        "",
        "| budget | checks | checks that warned | that alerted | stated |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for budget, stated, runs in (
        ("lifetime", "P(any warning over the monitor's life) ≤ 1 %, any alert ≤ 0.1 %", checks),
        ("check", "≤ 1 % of checks warn, ≤ 0.1 % alert", checks // 5),
    ):
        monitor = gr.SkewMonitor(
            reference=reference,
            every=200,
            seconds=None,
            budget=budget,  # type: ignore[arg-type]
            background=False,
        )
        warned = alerted = 0
        for _ in range(runs):
            monitor.observe_batch(draw(columns, 200, rng))
            report = monitor.last_report
            assert report is not None
            warned += report.severity != "ok"
            alerted += report.severity == "alert"
        lines.append(f"| {budget} | {runs:,} | {warned} | {alerted} | {stated} |")
    return lines


def cost(rng: np.random.Generator) -> list[str]:
    """A check's cost, and what it does to the calls that make it due."""
    features = 20
    reference_columns = {f"x{j}": rng.normal(size=100_000) for j in range(features)}
    reference = gr.Profile.from_columns(reference_columns)
    window = gr.Profile.from_columns(
        {n: rng.normal(size=10_000) for n in reference_columns}, like=reference
    )
    times = []
    for _ in range(30):
        started = time.perf_counter()
        gr.compare(reference, window)
        times.append(time.perf_counter() - started)
    check = float(np.median(times))
    rows = [{n: float(v) for n, v in zip(reference_columns, r, strict=True)} for r in
            rng.normal(size=(2_000, features))]  # fmt: skip
    lines = [
        "### Cost of a check, and the calls that make it due",
        "",
        f"`compare()` of a 10,000-row window with a 100,000-row reference, {features} numeric "
        f"features: median {check * 1e3:.2f} ms over 30 runs. `SkewMonitor.observe(row)` "
        "with `every=1,000` (a check every 1,000 calls), 20,000 calls:",
        "",
        "| checks run | median call | p99 call | p99.9 call | mean of the 20 slowest calls |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, every, background in (
        ("none (`every` beyond the run): the baseline", 10**9, False),
        ("in the call (`background=False`)", 1_000, False),
        ("on the worker thread (default)", 1_000, True),
    ):
        monitor = gr.SkewMonitor(
            reference=reference, every=every, seconds=None, background=background
        )
        calls = np.empty(20_000)
        for i in range(20_000):
            row = rows[i % len(rows)]
            started = time.perf_counter_ns()
            monitor.observe(row)
            calls[i] = time.perf_counter_ns() - started
        monitor.wait(60)
        q = np.quantile(calls, [0.5, 0.99, 0.999]) / 1e3
        lines.append(
            f"| {label} | {q[0]:.1f} µs | {q[1]:.1f} µs | {q[2]:.0f} µs | "
            f"{np.sort(calls)[-20:].mean() / 1e3:.0f} µs |"
        )
    lines += [
        "",
        "Every 1,000th call (every 1,024th in the baseline) profiles the buffered block "
        "of rows in the call; with checks on the worker thread those calls also share "
        "the interpreter lock with the comparison running beside them.",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(SEED)
    data = datasets()
    reps = 8 if args.quick else 40
    started = time.perf_counter()
    from _harness import machine

    gr.configure(hooks=[])  # the drift events of thousands of checks: not the output
    out = [f"_{machine()}_", ""]
    out += [*no_drift(data, reps, rng), ""]
    out += [*small_windows(data, reps, rng), ""]
    out += [*power(data, max(4, reps // 4), rng), ""]
    out += [*lifetime(data, 1_000 if args.quick else 10_000, rng), ""]
    out += [*cost(rng), ""]
    out.append(f"Seed {SEED}; {time.perf_counter() - started:.0f} s.")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
