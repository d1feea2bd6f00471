"""Typed values: what a scale costs over a bare float, and import time.

Run: ``python benchmarks/bench_values.py``
"""

from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import sys
from pathlib import Path

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


_DEPS = "import numpy, attrs, structlog, opentelemetry.trace, opentelemetry.metrics"
_TIMED = """
import time
start = time.perf_counter()
{statement}
print(time.perf_counter() - start)
"""


def _import_seconds(statement: str, *, after: str = "", runs: int = 21) -> float:
    """Median seconds of *statement* in a fresh interpreter, after *after* ran untimed.

    Byte code is compiled first and may be read, as it is for an installed
    package (an editable install with PYTHONDONTWRITEBYTECODE would otherwise
    compile every module on every import and time the compiler).
    """
    compileall.compile_dir(str(Path(gr.__file__).parent), quiet=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = []
    for _ in range(runs):
        code = after + "\n" + _TIMED.format(statement=statement)
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
        )
        times.append(float(out.stdout))
    return statistics.median(times)


def imports(suite: Suite) -> None:
    suite.add(
        "import dependencies (numpy, attrs, structlog, opentelemetry-api)", _import_seconds(_DEPS)
    )
    suite.add(
        "import guardrail, dependencies already imported",
        _import_seconds("import guardrail", after=_DEPS),
        baseline="import dependencies (numpy, attrs, structlog, opentelemetry-api)",
        note="what guardrail's own modules add",
    )
    suite.add(
        "first use of every mechanism (limits, profiles, thresholds, ...)",
        _import_seconds(
            "gr.ActionLimit, gr.Profile, gr.compare, gr.SkewMonitor, gr.DynamicThreshold, gr.OutcomeMonitor, gr.Holdout, gr.RedisStore",
            after=_DEPS + "; import guardrail as gr",
        ),
        note="deferred until a name is used",
    )


def main() -> None:
    suite = Suite("Typed values")
    scalars(suite)
    batches(suite)
    imports(suite)
    print(f"_{machine()}_\n")
    print(suite.table())
    print()
    own = suite.get("import guardrail, dependencies already imported").seconds
    print(f"guardrail adds {format_seconds(own)} to the import of its dependencies")


if __name__ == "__main__":
    main()
