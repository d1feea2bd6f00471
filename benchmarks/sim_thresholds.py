"""Does a DynamicThreshold hold its target rate on a shifting score stream?

The stream: log-odds scores drawn from a normal distribution whose mean and
spread move the way a fraud model's inputs do over a few weeks (a quiet
start, a slow drift upwards, a sudden jump when an upstream feature changes,
a spread that widens, then a drift back). Both a dynamic threshold and a fixed
threshold (set where the first phase flags the target rate) decide on every
score; the realised rate is measured in consecutive windows and compared with
the target.

A second table follows the realised rate on score ramps (rising, falling, a
step) whose scores are narrowly spread around a moving mean: there a
threshold that decides with a value trailing its tracker shows the lag at
once. ``dead_band=0`` saves every move, so it decides on the tracker by
construction; the default dead band must decide identically.

Run: ``python benchmarks/sim_thresholds.py``
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

import guardrail as gr

TARGET = 0.01
WINDOW = 2_000


def stream(n: int = 120_000, seed: int = 7) -> np.ndarray:
    """Log-odds scores whose distribution shifts in five phases."""
    rng = np.random.default_rng(seed)
    k = n // 6
    mean = np.concatenate(
        [
            np.full(k, -3.0),  # quiet
            np.linspace(-3.0, -1.5, k),  # slow drift up
            np.full(k, -0.5),  # sudden jump
            np.full(k, -0.5),
            np.linspace(-0.5, -3.5, k),  # drift back, past the start
            np.full(n - 5 * k, -3.5),
        ]
    )
    spread = np.concatenate([np.full(3 * k, 1.2), np.full(n - 3 * k, 1.8)])  # widens
    return mean + spread * rng.standard_normal(n)


@dataclass
class Outcome:
    """Mean absolute gap |realised rate - target| over the windows, and the worst."""

    dynamic_gap: float
    fixed_gap: float
    dynamic_worst: float
    fixed_worst: float
    versions: int


def noise_floor(rate: float = TARGET, window: int = WINDOW) -> float:
    """Mean |realised - target| of a rate held exactly: binomial noise alone."""
    return math.sqrt(2 / math.pi) * math.sqrt(rate * (1 - rate) / window)


MODEL = gr.ModelRef(name="sim", version="1")


def decide_all(threshold: gr.DynamicThreshold[Any], probabilities: np.ndarray) -> np.ndarray:
    """Each score decided by ``threshold.decide`` (which then updates), one at a time."""
    flags = np.empty(probabilities.size, dtype=bool)
    for i, p in enumerate(probabilities.tolist()):
        flags[i] = threshold.decide(gr.Prediction(gr.Probability(p), MODEL)).above
    return flags


RAMP_TARGET = 0.1
RAMP_N = 20_000
SPREAD = 0.03


def ramp(kind: str, seed: int = 0, n: int = RAMP_N) -> np.ndarray:
    """Probabilities whose log-odds mean rises, falls or steps; spread ``SPREAD`` log-odds."""
    rng = np.random.default_rng(seed)
    if kind == "rising":
        mean = np.linspace(-2.0, 0.0, n)
    elif kind == "falling":
        mean = np.linspace(0.0, -2.0, n)
    else:  # a step up halfway
        mean = np.where(np.arange(n) < n // 2, -2.0, -1.0)
    scores = mean + SPREAD * rng.standard_normal(n)
    return 1.0 / (1.0 + np.exp(-scores))


@dataclass
class RampOutcome:
    """Realised positive rate over a ramp for each threshold."""

    kind: str
    default: float
    no_band: float
    fixed: float
    identical: bool


def simulate_ramp(kind: str, seed: int = 0, n: int = RAMP_N) -> RampOutcome:
    """Decide a ramp with the default dead band, ``dead_band=0`` and a fixed threshold."""
    probabilities = ramp(kind, seed, n)
    start = float(np.quantile(probabilities[:500], 1.0 - RAMP_TARGET))

    def make(band: float | None) -> gr.DynamicThreshold[Any]:
        return gr.DynamicThreshold(
            target_rate=RAMP_TARGET, initial=gr.Probability(start), dead_band=band, name="ramp"
        )

    default = decide_all(make(None), probabilities)
    no_band = decide_all(make(0.0), probabilities)
    fixed = probabilities >= start
    return RampOutcome(
        kind,
        float(default.mean()),
        float(no_band.mean()),
        float(fixed.mean()),
        bool(np.array_equal(default, no_band)),
    )


def simulate(n: int = 120_000, seed: int = 7, step: float | None = None) -> Outcome:
    """Run both thresholds over the stream, one score at a time."""
    scores = stream(n, seed)
    probabilities = 1.0 / (1.0 + np.exp(-scores))
    # The fixed threshold flags the target rate in the first phase.
    fixed = float(np.quantile(probabilities[: n // 6], 1.0 - TARGET))
    dynamic = gr.DynamicThreshold(
        target_rate=TARGET, initial=gr.Probability(fixed), step=step, name="sim"
    )
    dyn_flags = decide_all(dynamic, probabilities)
    fixed_flags = probabilities >= fixed
    windows = n // WINDOW

    def gaps(flags: np.ndarray) -> np.ndarray:
        rates = flags[: windows * WINDOW].reshape(windows, WINDOW).mean(axis=1)
        return np.abs(rates - TARGET)

    d, f = gaps(dyn_flags), gaps(fixed_flags)
    return Outcome(
        float(d.mean()), float(f.mean()), float(d.max()), float(f.max()), dynamic.current().version
    )


def main() -> None:
    """Print the gaps as a markdown table."""
    gr.configure(hooks=[])
    out = simulate()
    print(f"### Rate tracking (target {TARGET:.0%}, windows of {WINDOW} scores)\n")
    print("| threshold | mean abs gap | worst window gap |")
    print("| --- | ---: | ---: |")
    print(f"| dynamic | {out.dynamic_gap:.4f} | {out.dynamic_worst:.4f} |")
    print(f"| fixed | {out.fixed_gap:.4f} | {out.fixed_worst:.4f} |")
    print(f"| (binomial noise of a rate held exactly) | {noise_floor():.4f} | |")
    ratio = out.fixed_gap / out.dynamic_gap if out.dynamic_gap else math.inf
    print(f"\nThe fixed threshold's mean gap is {ratio:.1f}x the dynamic one's; the dynamic")
    print(f"threshold saved {out.versions} versions over {120_000:,} scores.")
    print(
        f"\n### Score ramps (target {RAMP_TARGET:.0%}, {RAMP_N:,} scores, "
        f"log-odds spread {SPREAD})\n"
    )
    print("| ramp | default dead band | `dead_band=0` | fixed | same decisions |")
    print("| --- | ---: | ---: | ---: | --- |")
    for kind in ("rising", "falling", "step"):
        r = simulate_ramp(kind)
        same = "yes" if r.identical else "no"
        print(f"| {kind} | {r.default:.4f} | {r.no_band:.4f} | {r.fixed:.4f} | {same} |")


if __name__ == "__main__":
    main()
