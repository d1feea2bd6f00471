"""Typed values: what a scale costs over a bare float, and import time.

Run: ``python benchmarks/bench_values.py``
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import numpy as np
from _harness import Suite, format_seconds, machine

import guardrail as gr


def scalars(suite: Suite) -> None:
    model = gr.ModelRef(name="fraud", version="1")
    x = 0.3
    p = gr.Probability(x)
    lo = gr.LogOdds(1.2)
    suite.time("bare float(x)", lambda: float(x), number=100_000)
    suite.time(
        "Probability(0.3)", lambda: gr.Probability(x), number=100_000, baseline="bare float(x)"
    )
    suite.time("LogOdds(1.2)", lambda: gr.LogOdds(1.2), number=100_000, baseline="bare float(x)")
    suite.time(
        "LogOdds.to_probability()", lo.to_probability, number=100_000, baseline="bare float(x)"
    )
    suite.time("Probability.to_log_odds()", p.to_log_odds, number=100_000, baseline="bare float(x)")
    suite.time(
        "Prediction(p, model)",
        lambda: gr.Prediction(p, model),
        number=100_000,
        baseline="bare float(x)",
    )


def batches(suite: Suite) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(scale=4, size=1_000_000)
    lo = gr.LogOdds(x)
    p = lo.to_probability()
    raw_p = p.value

    def raw_sigmoid() -> object:
        return 1.0 / (1.0 + np.exp(-x))

    def raw_logit() -> object:
        return np.log(raw_p / (1.0 - raw_p))

    suite.time("raw numpy sigmoid, 1e6", raw_sigmoid, number=5, repeat=15)
    suite.time(
        "LogOdds.to_probability(), 1e6",
        lo.to_probability,
        number=5,
        repeat=15,
        baseline="raw numpy sigmoid, 1e6",
    )
    suite.time("raw numpy logit, 1e6", raw_logit, number=5, repeat=15)
    suite.time(
        "Probability.to_log_odds(), 1e6",
        p.to_log_odds,
        number=5,
        repeat=15,
        baseline="raw numpy logit, 1e6",
    )
    suite.time("raw np.array copy, 1e6", lambda: np.array(x), number=5, repeat=15)
    suite.time(
        "LogOdds(array), 1e6 (copy + NaN check)",
        lambda: gr.LogOdds(x),
        number=5,
        repeat=15,
        baseline="raw np.array copy, 1e6",
    )


def _import_seconds(statement: str, runs: int = 21) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def imports(suite: Suite) -> None:
    deps = "import numpy, attrs, structlog, opentelemetry.trace, opentelemetry.metrics"
    suite.add("python -c pass", _import_seconds("pass"))
    suite.add("import dependencies", _import_seconds(deps), baseline="python -c pass")
    suite.add(
        "import guardrail", _import_seconds("import guardrail"), baseline="import dependencies"
    )
    own = suite.get("import guardrail").seconds - suite.get("import dependencies").seconds
    suite.add("guardrail's own modules", own, note="import guardrail - import dependencies")


def main() -> None:
    suite = Suite("Typed values")
    scalars(suite)
    batches(suite)
    imports(suite)
    print(f"_{machine()}_\n")
    print(suite.table())
    print()
    own = suite.get("guardrail's own modules").seconds
    print(f"guardrail adds {format_seconds(own)} to the import of its dependencies")


if __name__ == "__main__":
    main()
