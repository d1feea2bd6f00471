"""The command line's data path: reading a CSV and profiling it, against pandas.

``guardrail profile`` reads CSV with the standard library's csv module, so
that it needs only the core dependencies; pandas' C parser is the peer a user
would otherwise reach for. Also: rendering the HTML report.

Run: ``python benchmarks/bench_cli.py`` (pandas from the ``bench`` extra)
"""

from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _harness import Suite, machine

import guardrail as gr
from guardrail._app.files import read_data

ROWS = 200_000


def write_csv(path: Path) -> None:
    rng = np.random.default_rng(0)
    amount = np.round(rng.lognormal(3.6, 0.9, ROWS), 2)
    age = rng.integers(18, 95, ROWS)
    country = rng.choice(["FR", "DE", "ES", "IT", "NL"], ROWS)
    merchant = rng.choice([f"m-{i:02d}" for i in range(50)], ROWS)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["amount", "age", "country", "merchant"])
        writer.writerows(
            zip(amount.tolist(), age.tolist(), country.tolist(), merchant.tolist(), strict=True)
        )


def main() -> None:
    suite = Suite(f"guardrail profile vs pandas, a {ROWS:,}-row CSV (4 columns)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        write_csv(path)
        suite.time("pandas.read_csv", lambda: pd.read_csv(path), number=1, repeat=5)
        suite.time(
            "read CSV (csv module)",
            lambda: read_data(path),
            number=1,
            repeat=5,
            baseline="pandas.read_csv",
        )
        suite.time(
            "pandas.read_csv + Profile.from_pandas",
            lambda: gr.Profile.from_pandas(pd.read_csv(path)),
            number=1,
            repeat=5,
        )
        suite.time(
            "guardrail profile (read + Profile.from_columns)",
            lambda: gr.Profile.from_columns(read_data(path).columns or {}),
            number=1,
            repeat=5,
            baseline="pandas.read_csv + Profile.from_pandas",
        )
        reference = gr.Profile.from_pandas(pd.read_csv(path))

    rng = np.random.default_rng(1)
    columns = {f"x{i}": rng.normal(i % 3, 1, 20_000) for i in range(30)}
    serving = gr.Profile.from_columns(
        {k: v + 0.3 * (i % 2) for i, (k, v) in enumerate(columns.items())},
        like=gr.Profile.from_columns(columns),
    )
    baseline = gr.Profile.from_columns(columns)
    skew = gr.compare(baseline, serving)
    report = gr.skew.Report.from_skew(skew, reference=baseline, serving=serving)
    render = Suite("HTML report, 30 numeric features with histograms")
    render.time("gr.compare (30 features)", lambda: gr.compare(baseline, serving), number=20)
    render.time(
        "Report.from_skew + to_html",
        lambda: gr.skew.Report.from_skew(skew, reference=baseline, serving=serving).to_html(),
        number=20,
        baseline="gr.compare (30 features)",
    )
    size = len(report.to_html().encode())

    print(f"_{machine()}_\n")
    print(suite.table())
    print()
    print(render.table())
    print()
    print(f"- the report is {size / 1024:.0f} KiB, self-contained")
    print(f"- reference profile of the CSV: {len(reference)} features, {reference.rows:,} rows")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"- script ran in {time.perf_counter() - start:.0f} s")
