"""Outcome alarms: false alarms on calibrated models, power on miscalibrated ones.

Each stream feeds an ``OutcomeMonitor`` with default settings (``ece_bound``
0.1, ``bias_bounds`` ±0.05, ``min_outcomes`` 200) one label at a time, and the
table counts the streams in which each alarm had fired by 200, 1,000 and
5,000 labels, and the median label count of the first calibration alarm.

Synthetic: predictions uniform on (0, 1); labels true with probability ``p``
(calibrated), ``p ∓ 0.2`` above and below 0.5 (overconfident, ECE 0.2, no
bias), ``p ∓ 0.1`` (ECE 0.1: on the bound) or ``p - 0.1`` (biased by +0.1).

Real: scikit-learn's bundled breast cancer data (569 rows, no download), split
in half with a fixed seed; models fitted on one half score the other, and a
stream draws rows of that half with replacement (the real labels), so the
held-out half is the population and its binned ECE (10 equal-count bins) is
the truth the alarms are judged by.

Stated rate (docs/outcomes.md): 0.1 % per calibration check, 1, 8 and 15
checks by 200, 1,000 and 5,000 labels: 0.1 %, 0.8 % and 1.5 % of streams.

Run: ``python benchmarks/bench_outcomes.py`` (about two minutes here;
``--quick`` for 20 streams per case). Seeded: the same command prints the
same tables.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable

import numpy as np

import guardrail as gr
from guardrail.instrumentation import CalibrationOutOfRange, Event, PredictionBiasOutOfRange

SEED = 20_261_205
COUNTS = (200, 1_000, 5_000)
MODEL = gr.ModelRef(name="bench", version="1")

#: Draws n (prediction, label) pairs from a seeded generator.
Draw = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


def stream(p: np.ndarray, y: np.ndarray) -> list[tuple[int, Event]]:
    """The alarms of one stream, each with the label count it fired at."""
    alarms: list[tuple[int, Event]] = []
    count = 0
    monitor = gr.OutcomeMonitor(capacity=100_000, on_retrain=lambda e: alarms.append((count, e)))
    batch = gr.Prediction(gr.Probability(p), MODEL)
    monitor.record(batch)
    for i, label in enumerate(y.tolist()):
        count = i + 1
        monitor.record_outcome(f"{batch.id}:{i}", int(label))
    return alarms


def synthetic(shift: Callable[[np.ndarray], np.ndarray]) -> Draw:
    """Uniform predictions; labels true with probability ``shift(p)``."""

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        p = rng.uniform(0.0, 1.0, n)
        return p, (rng.random(n) < shift(p)).astype(np.int64)

    return draw


def resample(p_pop: np.ndarray, y_pop: np.ndarray) -> Draw:
    """Rows of a held-out population, drawn with replacement."""

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        rows = rng.integers(0, p_pop.size, n)
        return p_pop[rows], y_pop[rows]

    return draw


def breast_cancer() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Held-out predictions and labels of three models on the breast cancer data."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.naive_bayes import GaussianNB
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x_fit, x_out, y_fit, y_out = train_test_split(x, y, test_size=0.5, random_state=0, stratify=y)
    models = {
        "logistic regression": make_pipeline(StandardScaler(), LogisticRegression(C=0.1)),
        "logistic, over-regularized (C=0.001)": make_pipeline(
            StandardScaler(), LogisticRegression(C=0.001)
        ),
        "Gaussian naive Bayes": GaussianNB(),
    }
    out = {}
    for name, model in models.items():
        model.fit(x_fit, y_fit)
        p = np.clip(model.predict_proba(x_out)[:, 1], 1e-6, 1 - 1e-6)
        out[name] = (p, y_out.astype(np.int64))
    return out


def row(name: str, truth: str, draw: Draw, streams: int, seed: int) -> str:
    """One table row: alarms by each count, and the median count of the first ECE alarm."""
    rng = np.random.default_rng(seed)
    runs = [stream(*draw(rng, COUNTS[-1])) for _ in range(streams)]

    def by(kind: type[Event], labels: int) -> int:
        return sum(any(isinstance(e, kind) and at <= labels for at, e in r) for r in runs)

    cells = [f"{by(CalibrationOutOfRange, n)} / {by(PredictionBiasOutOfRange, n)}" for n in COUNTS]
    firsts = [next((at for at, e in r if isinstance(e, CalibrationOutOfRange)), None) for r in runs]
    caught = [at for at in firsts if at is not None]
    median = f"{statistics.median(caught):,.0f}" if caught else "never"
    return f"| {name} | {truth} | " + " | ".join(cells) + f" | {median} |"


def header(streams: int) -> list[str]:
    counts = " | ".join(f"by {n:,}" for n in COUNTS)
    return [
        f"Alarms as calibration / bias, in {streams} streams each.",
        "",
        f"| stream | truth | {counts} | median labels to first calibration alarm |",
        "| --- | --- | " + " | ".join("---:" for _ in COUNTS) + " | ---: |",
    ]


def main(argv: list[str] | None = None) -> int:
    """Print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 streams per case")
    args = parser.parse_args(argv)
    streams = 20 if args.quick else 100
    gr.configure(hooks=[])

    print("### Outcome alarms, synthetic streams\n")
    lines = header(streams)
    cases: list[tuple[str, str, Draw]] = [
        ("calibrated", "ECE 0, bias 0", synthetic(lambda p: p)),
        ("overconfident by 0.1", "ECE 0.1 (on the bound), bias 0",
         synthetic(lambda p: np.where(p >= 0.5, p - 0.1, p + 0.1))),
        ("overconfident by 0.2", "ECE 0.2, bias 0",
         synthetic(lambda p: np.where(p >= 0.5, p - 0.2, p + 0.2))),
        ("too high by 0.1", "ECE about 0.1, bias +0.1",
         synthetic(lambda p: np.clip(p - 0.1, 0.0, 1.0))),
    ]  # fmt: skip
    for i, (name, truth, draw) in enumerate(cases):
        lines.append(row(name, truth, draw, streams, SEED + i))
    print("\n".join(lines))

    print("\n### Outcome alarms, breast cancer (scikit-learn), held-out half resampled\n")
    lines = header(streams)
    for i, (name, (p, y)) in enumerate(breast_cancer().items()):
        population = gr.outcomes.calibration(p, y.astype(np.float64))
        bias = float(p.mean() - y.mean())
        truth = f"ECE {population.plug_in:.3f}, bias {bias:+.3f} ({p.size} rows)"
        lines.append(row(name, truth, resample(p, y), streams, SEED + 100 + i))
    print("\n".join(lines))
    print(
        "\nStated false-alarm rate of the calibration alarm: 0.1 % per check; by 200, "
        "1,000 and 5,000 labels at most 0.1 %, 0.8 % and 1.5 % of streams whose ECE is "
        "within the bound."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
