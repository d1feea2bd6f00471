"""Skew detection: guardrail's profiles against whylogs 1.6.4 on the same data.

Run: ``python benchmarks/bench_skew.py``

The data: 15 float and 5 string features, generated from a seeded numpy
generator (the same on both sides). whylogs 1.6.4 needs ``numpy<2``, so its
side runs in its own interpreter, found at ``$GUARDRAIL_WHYLOGS_PYTHON``
(default ``/tmp/whylogs-venv/bin/python``; make it with
``python -m venv /tmp/whylogs-venv && /tmp/whylogs-venv/bin/pip install
whylogs==1.6.4 'numpy<2' pandas ipython 'scipy<1.14'``: whylogs' drift
functions import IPython and scipy). This script runs itself there with
``--whylogs`` and reads the figures back as JSON. If that interpreter is
missing, the whylogs rows are left out and the script says so.

Also measured: Apache DataSketches' KLL sketch (``datasketches``, if
installed), the quantile sketch one would reach for instead of fixed bins.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROWS = 1_000_000
ROW_SAMPLE = 2_000
WHYLOGS_PYTHON = os.environ.get("GUARDRAIL_WHYLOGS_PYTHON", "/tmp/whylogs-venv/bin/python")


def make_data(rows: int, seed: int) -> dict[str, Any]:
    """15 float columns and 5 string columns (10 to 50 categories)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(15):
        columns[f"f{i}"] = rng.normal(loc=float(i), scale=1.0 + i / 5, size=rows)
    for i in range(5):
        categories = np.array([f"cat{i}_{j}" for j in range(10 * (i + 1))], dtype=object)
        columns[f"c{i}"] = categories[rng.integers(0, len(categories), rows)]
    return columns


def dict_rows(columns: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The first *count* rows as dicts of Python floats and strings."""
    lists = {name: values[:count].tolist() for name, values in columns.items()}
    return [{name: lists[name][i] for name in lists} for i in range(count)]


#: whylogs runs in an interpreter of its own: its figures are not round-robin.
WHYLOGS_NOTE = "measured in whylogs' own interpreter (median), not round-robin"


def once(fn: Callable[[], object]) -> Callable[[], float]:
    """A sampler for the long cases: one run of *fn*, in seconds."""

    def sample() -> float:
        gc.collect()
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return sample


def once_median(fn: Callable[[], object], repeat: int = 3) -> float:
    """Median seconds of *repeat* single runs (whylogs' side, in its own interpreter)."""
    return statistics.median(once(fn)() for _ in range(repeat))


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak memory traced while running *fn* (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def retained_bytes(fn: Callable[[], object]) -> int:
    """Memory still held by what *fn* returns (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        kept = fn()
        current = tracemalloc.get_traced_memory()[0]
        del kept
        return current
    finally:
        tracemalloc.stop()


def cycle(rows: list[dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    return itertools.cycle(rows).__next__


# -- the whylogs side (runs in whylogs' own interpreter) -----------------------


def whylogs_side() -> dict[str, Any]:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import pandas as pd
    import whylogs
    from whylogs.core import DatasetProfile, DatasetProfileView
    from whylogs.viz.utils.drift_calculations import calculate_drift_values

    train = make_data(ROWS, seed=1)
    serve = make_data(ROWS // 10, seed=2)
    out: dict[str, Any] = {
        "version": whylogs.__version__,
        "numpy": np.__version__,
        "checksum": float(train["f3"].sum()),
    }
    rows = dict_rows(train, 500)
    profile = DatasetProfile()
    next_row = cycle(rows)
    profile.track(row=next_row())
    per_row = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(100):
            profile.track(row=next_row())
        per_row.append((time.perf_counter() - start) / 100)
    out["per_row"] = statistics.median(per_row)

    frame = pd.DataFrame(train)
    # One run (about 25 s here): it is timed, gives the reference, and its
    # peak RSS growth stands in for tracemalloc, which would slow it severalfold.
    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reference = DatasetProfile()
    start = time.perf_counter()
    reference.track(pandas=frame)
    out["batch"] = time.perf_counter() - start
    out["batch_peak"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
    ref_view = reference.view()
    current = DatasetProfile()
    current.track(pandas=pd.DataFrame(serve))
    cur_view = current.view()
    out["compare"] = once_median(lambda: calculate_drift_values(cur_view, ref_view), repeat=5)
    blob = ref_view.serialize()
    out["size"] = len(blob)
    out["merge"] = once_median(lambda: ref_view.merge(cur_view), repeat=5)
    out["load"] = once_median(lambda: DatasetProfileView.deserialize(blob), repeat=5)
    out["memory_per_feature"] = retained_bytes(lambda: DatasetProfileView.deserialize(blob)) / 20
    return out


def run_whylogs() -> tuple[dict[str, Any] | None, str]:
    if not Path(WHYLOGS_PYTHON).exists():
        return None, f"whylogs not measured: no interpreter at {WHYLOGS_PYTHON}"
    done = subprocess.run(
        [WHYLOGS_PYTHON, __file__, "--whylogs"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        return None, f"whylogs side failed: {done.stderr.strip().splitlines()[-1:]}"
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


# -- guardrail's side -----------------------------------------------------------


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    sys.path.insert(0, str(Path(__file__).parent.parent / "src"))
    from _harness import Suite, format_seconds, machine

    import guardrail as gr

    gr.configure(hooks=[])
    whylogs, why_note = run_whylogs()
    train = make_data(ROWS, seed=1)
    serve = make_data(ROWS // 10, seed=2)
    suite = Suite("Skew: guardrail vs whylogs 1.6.4 (15 float + 5 string features)")
    sizes: list[tuple[str, str, str]] = []

    # Per-row tracking of a 20-feature dict row.
    rows = dict_rows(train, ROW_SAMPLE)
    ref = gr.Profile.from_columns(train)
    if whylogs:
        suite.add("whylogs DatasetProfile.track(row)", whylogs["per_row"], note=WHYLOGS_NOTE)
    base = "whylogs DatasetProfile.track(row)" if whylogs else None
    for label, kwargs in (
        ("SkewMonitor.observe(row), sample=1", {}),
        ("SkewMonitor.observe(row), sample=1, on_invalid=raise", {"on_invalid": "raise"}),
        ("SkewMonitor.observe(row), sample=0.05", {"sample": 0.05}),
    ):
        monitor = gr.SkewMonitor(reference=ref, every=10_000, seconds=None, **kwargs)
        next_row = cycle(rows)
        suite.time(
            label,
            lambda m=monitor, n=next_row: m.observe(n()),
            number=20_000,
            repeat=7,
            baseline=base,
            note="amortized: buffering, block profiling and a check every 10k rows",
        )
    try:
        from datasketches import kll_doubles_sketch

        sketches = [kll_doubles_sketch(200) for _ in range(15)]
        float_names = [f"f{i}" for i in range(15)]
        next_row = cycle(rows)

        def kll_row() -> None:
            row = next_row()
            for sketch, name in zip(sketches, float_names, strict=True):
                sketch.update(row[name])

        suite.time(
            "datasketches KLL update, 15 floats of a row",
            kll_row,
            number=20_000,
            repeat=7,
            baseline="SkewMonitor.observe(row), sample=1",
            note="the quantile sketch alone, before any categorical work",
        )
    except ImportError:
        kll_doubles_sketch = None

    # Profiling a 1,000,000 x 20 frame.
    if whylogs:
        suite.add("whylogs track(pandas=1M x 20)", whylogs["batch"], note=WHYLOGS_NOTE)
    base = "whylogs track(pandas=1M x 20)" if whylogs else None
    build = suite.sample(
        "Profile.from_columns(1M x 20), reference",
        once(lambda: gr.Profile.from_columns(train)),
        repeat=3,
        baseline=base,
    )
    serving_batch = suite.sample(
        "Profile.from_columns(1M x 20, like=ref), serving",
        once(lambda: gr.Profile.from_columns(train, like=ref)),
        repeat=3,
        baseline=base,
    )
    monitor = gr.SkewMonitor(reference=ref, every=10**9, seconds=None)
    suite.sample(
        "SkewMonitor.observe_batch(1M x 20 columns)",
        once(lambda: monitor.observe_batch(train)),
        repeat=3,
        baseline=base,
    )
    try:
        import pandas as pd

        frame = pd.DataFrame(train)
        suite.sample(
            "Profile.from_pandas(1M x 20)",
            once(lambda: gr.Profile.from_pandas(frame)),
            repeat=3,
            baseline=base,
        )
    except ImportError:
        pass
    if kll_doubles_sketch is not None:

        def kll_batch() -> None:
            for i in range(15):
                kll_doubles_sketch(200).update(train[f"f{i}"])

        suite.sample(
            "datasketches KLL update, 15 float columns of 1M",
            once(kll_batch),
            repeat=3,
            baseline="Profile.from_columns(1M x 20), reference",
            note="floats only; no counts, moments or categories",
        )
    peak = peak_bytes(lambda: gr.Profile.from_columns(train))
    sizes.append(("peak extra memory, profiling 1M x 20", f"{peak / 2**20:.1f} MB", ""))
    if whylogs:
        sizes[-1] = (
            sizes[-1][0],
            sizes[-1][1],
            f"{whylogs['batch_peak'] / 2**20:.1f} MB (peak RSS growth)",
        )

    # Comparing, merging, serializing and loading.
    current = gr.Profile.from_columns(serve, like=ref)
    if whylogs:
        suite.add(
            "whylogs calculate_drift_values (20 features)", whylogs["compare"], note=WHYLOGS_NOTE
        )
    suite.time(
        "gr.compare(ref, serving) (20 features)",
        lambda: gr.compare(ref, current),
        number=20,
        repeat=15,
        baseline="whylogs calculate_drift_values (20 features)" if whylogs else None,
    )
    if whylogs:
        suite.add("whylogs view.merge", whylogs["merge"], note=WHYLOGS_NOTE)
    suite.time(
        "Profile.merge",
        lambda: ref.merge(current),
        number=50,
        repeat=15,
        baseline="whylogs view.merge" if whylogs else None,
    )
    serving_builder = ref.builder()
    serving_builder.add_columns(serve)
    suite.time(
        "ProfileBuilder.build (a snapshot)",
        serving_builder.build,
        number=50,
        repeat=15,
        baseline="Profile.merge",
    )
    text = ref.to_json()
    if whylogs:
        suite.add("whylogs DatasetProfileView.deserialize", whylogs["load"], note=WHYLOGS_NOTE)
    suite.time(
        "Profile.from_json",
        lambda: gr.Profile.from_json(text),
        number=50,
        repeat=15,
        baseline="whylogs DatasetProfileView.deserialize" if whylogs else None,
    )
    suite.time("Profile.to_json", ref.to_json, number=50, repeat=15)
    sizes.append(
        (
            "serialized reference profile",
            f"{len(text.encode()) / 1024:.1f} KB (JSON)",
            f"{whylogs['size'] / 1024:.1f} KB (protobuf)" if whylogs else "",
        )
    )
    per_feature = retained_bytes(lambda: gr.Profile.from_json(text)) / 20
    sizes.append(
        (
            "memory per feature (loaded profile)",
            f"{per_feature / 1024:.1f} KB",
            f"{whylogs['memory_per_feature'] / 1024:.1f} KB" if whylogs else "",
        )
    )

    for result in suite.results:
        if result.baseline is not None:
            speedup = suite.get(result.baseline).seconds / result.seconds
            faster = f"{speedup:.0f}x" if speedup >= 10 else f"{speedup:.2f}x"
            result.note = "; ".join(filter(None, (f"{faster} faster", result.note)))
    print(f"Machine: {machine()}")
    if whylogs:
        same = abs(whylogs["checksum"] - float(train["f3"].sum())) < 1e-6
        print(
            f"whylogs {whylogs['version']} with numpy {whylogs['numpy']} "
            f"(same data on both sides: {same})"
        )
    else:
        print(why_note)
    print()
    print(suite.table())
    print()
    print("| size / memory | guardrail | whylogs |")
    print("| --- | ---: | ---: |")
    for name, ours, theirs in sizes:
        print(f"| {name} | {ours} | {theirs} |")
    print()
    per_row = suite.get("SkewMonitor.observe(row), sample=1").seconds
    compare_s = suite.get("gr.compare(ref, serving) (20 features)").seconds
    targets = [
        ("per-row <= 10 µs", format_seconds(per_row), per_row <= 10e-6),
        (
            "batch >= 1M rows/s",
            f"{ROWS / serving_batch.seconds / 1e6:.2f}M rows/s serving, "
            f"{ROWS / build.seconds / 1e6:.2f}M rows/s reference",
            ROWS / build.seconds >= 1e6,
        ),
        ("batch extra memory <= 50 MB", f"{peak / 2**20:.1f} MB", peak <= 50 * 2**20),
        ("compare 20 features <= 10 ms", format_seconds(compare_s), compare_s <= 10e-3),
        ("serialized <= 100 KB", f"{len(text) / 1024:.1f} KB", len(text) <= 100 * 1024),
        (
            "merge <= 1 ms",
            format_seconds(suite.get("Profile.merge").seconds),
            suite.get("Profile.merge").seconds <= 1e-3,
        ),
        (
            "load <= 2 ms",
            format_seconds(suite.get("Profile.from_json").seconds),
            suite.get("Profile.from_json").seconds <= 2e-3,
        ),
    ]
    if whylogs:
        row_speedup = whylogs["per_row"] / per_row
        batch_speedup = whylogs["batch"] / build.seconds
        targets.append(("per-row >= 40x whylogs", f"{row_speedup:.0f}x", row_speedup >= 40))
        targets.append(("batch >= 20x whylogs", f"{batch_speedup:.0f}x", batch_speedup >= 20))
    print("| target | measured | met |")
    print("| --- | ---: | --- |")
    for name, value, met in targets:
        print(f"| {name} | {value} | {'yes' if met else 'no'} |")


if __name__ == "__main__":
    if sys.argv[1:] == ["--whylogs"]:
        print(json.dumps(whylogs_side()))
    else:
        main()
