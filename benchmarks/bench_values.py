"""Typed values: what a scale costs over a bare float, and import time.

Run: ``python benchmarks/bench_values.py``
"""

from __future__ import annotations

import compileall
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _harness import CPU, Suite, format_seconds, machine

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
start = time.process_time()
{statement}
print(time.process_time() - start)
"""


def _import_timer(statement: str, *, after: str = "") -> Callable[[], float]:
    """A sampler: CPU seconds of *statement* in a fresh interpreter, after *after* ran untimed.

    Byte code is compiled first and may be read, as it is for an installed
    package (an editable install with PYTHONDONTWRITEBYTECODE would otherwise
    compile every module on every import and time the compiler).
    """
    compileall.compile_dir(str(Path(gr.__file__).parent), quiet=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    code = after + "\n" + _TIMED.format(statement=statement)

    def sample() -> float:
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
        )
        return float(out.stdout)

    return sample


DEPENDENCIES = "import dependencies (numpy, attrs, structlog, opentelemetry-api)"


def imports(suite: Suite) -> None:
    suite.sample(DEPENDENCIES, _import_timer(_DEPS), repeat=21)
    suite.sample(
        "import guardrail, dependencies already imported",
        _import_timer("import guardrail", after=_DEPS),
        repeat=21,
        baseline=DEPENDENCIES,
        note="what guardrail's own modules add (fresh interpreters)",
    )
    suite.sample(
        "first use of every mechanism (limits, profiles, thresholds, ...)",
        _import_timer(
            "gr.ActionLimit, gr.Profile, gr.compare, gr.SkewMonitor, gr.DynamicThreshold, "
            "gr.OutcomeMonitor, gr.Holdout, gr.RedisStore",
            after=_DEPS + "; import guardrail as gr",
        ),
        repeat=21,
        baseline=DEPENDENCIES,
        note="deferred until a name is used",
    )


def main() -> None:
    suite = Suite("Typed values", clock=CPU)
    scalars(suite)
    batches(suite)
    print(f"_{machine()}_\n")
    print(suite.table())
    print()
    suite = Suite("Import time", timing="CPU time of each fresh interpreter's import")
    imports(suite)
    print(suite.table())
    print()
    own = suite.get("import guardrail, dependencies already imported").seconds
    print(f"guardrail adds {format_seconds(own)} to the import of its dependencies")


if __name__ == "__main__":
    main()
