"""Every mechanism at its own cost: the guard with 0 to 5 mechanisms, each
mechanism in a guard against the same mechanism called by hand, a batch, and
the OpenTelemetry SDK case.

Run: ``python benchmarks/bench_ladder.py`` (round-robin: ratios per round).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from _harness import CPU, WALL, Suite, machine
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import guardrail as gr

MODEL = gr.ModelRef(name="fraud", version="1")
ROW = {"amount": 101.0, "merchant": "a"}
RNG = np.random.default_rng(0)
REF = gr.Profile.from_columns(
    {
        "amount": RNG.normal(100.0, 15.0, 20_000),
        "merchant": RNG.choice(np.array(["a", "b", "c"], dtype=object), 20_000),
    }
)
WEIGHTS = RNG.normal(size=20)
BATCH = RNG.normal(size=(1000, 20))
BIG = 10**12


def predict(row: dict[str, Any]) -> float:
    return 0.3


def predict_batch(rows: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(rows @ WEIGHTS)))


def dynamic() -> gr.DynamicThreshold[Any]:
    return gr.DynamicThreshold(target_rate=0.1, initial=gr.Probability(0.5))


def limit(name: str) -> gr.ActionLimit:
    return gr.ActionLimit(name, max_actions=BIG, per="1h", key=lambda row: row["merchant"])


def skew() -> gr.SkewMonitor:
    return gr.SkewMonitor(reference=REF, sample=0.05, every=10**9)


def holdout() -> gr.Holdout:
    return gr.Holdout(fraction=0.05, unit=lambda row: row["merchant"], salt="s")


def outcomes() -> gr.OutcomeMonitor:
    return gr.OutcomeMonitor(capacity=100_000)


def guarded(**mechanisms: Any) -> Any:
    return gr.guard(model=MODEL, returns=gr.Probability, **mechanisms)(predict)


def ladder(suite: Suite) -> None:
    """The guard with 0 to 5 mechanisms, each against a bare call."""
    cases = {
        "bare call": lambda: predict(ROW),
        "guard(model)": (g0 := guarded(), lambda: g0(ROW))[1],
        "+ dynamic threshold": (g1 := guarded(threshold=dynamic()), lambda: g1(ROW))[1],
        "+ keyed limit": (
            g2 := guarded(threshold=dynamic(), limits=[limit("l2")]),
            lambda: g2(ROW),
        )[1],
        "+ skew monitor (5 %)": (
            g3 := guarded(threshold=dynamic(), limits=[limit("l3")], inputs=skew()),
            lambda: g3(ROW),
        )[1],
        "+ holdout": (
            g4 := guarded(
                threshold=dynamic(), limits=[limit("l4")], inputs=skew(), holdout=holdout()
            ),
            lambda: g4(ROW),
        )[1],
        "+ outcome monitor (5 mechanisms)": (
            g5 := guarded(
                threshold=dynamic(),
                limits=[limit("l5")],
                inputs=skew(),
                holdout=holdout(),
                outcomes=outcomes(),
            ),
            lambda: g5(ROW),
        )[1],
    }
    suite.ladder(cases, baseline="bare call")


def alone(suite: Suite) -> None:
    """Each mechanism in a guard, against guard(model) plus the mechanism by hand."""
    t, lim, mon, h, out = dynamic(), limit("alone"), skew(), holdout(), outcomes()
    p = gr.Prediction(gr.Probability(0.3), MODEL)
    plain = guarded()
    by_hand = {
        "dynamic threshold": lambda: (plain(ROW), t.decide(p)),
        "keyed limit": lambda: (plain(ROW), lim.allow(ROW["merchant"])),
        "skew monitor (5 %)": lambda: (plain(ROW), mon.observe(ROW)),
        "holdout": lambda: (plain(ROW), h.arm(ROW)),
        "outcome monitor": lambda: (plain(ROW), out.record(p, True, ROW)),
    }
    fixed = gr.Threshold(0.2, scale=gr.Probability)
    in_guard = {
        "dynamic threshold": guarded(threshold=dynamic()),
        "keyed limit": guarded(threshold=fixed, limits=[limit("g")]),
        "skew monitor (5 %)": guarded(inputs=skew()),
        "holdout": guarded(threshold=fixed, holdout=holdout()),
        "outcome monitor": guarded(outcomes=outcomes()),
    }
    for name, hand in by_hand.items():
        g = in_guard[name]
        suite.ladder(
            {f"{name}: guard(model) + by hand": hand, f"{name}: in a guard": lambda g=g: g(ROW)},
            baseline=f"{name}: guard(model) + by hand",
            rounds=9,
            runs=3,
        )
    five = guarded(
        threshold=dynamic(),
        limits=[limit("five")],
        inputs=skew(),
        holdout=holdout(),
        outcomes=outcomes(),
    )
    t2, lim2, mon2, h2, out2 = dynamic(), limit("parts"), skew(), holdout(), outcomes()

    def parts() -> None:
        plain(ROW)
        mon2.observe(ROW)
        t2.decide(p)
        h2.arm(ROW)
        lim2.allow(ROW["merchant"])
        out2.record(p, True, ROW)

    t3, lim3, mon3, g3 = dynamic(), limit("three"), skew(), guarded()
    three = guarded(threshold=dynamic(), limits=[limit("three-g")], inputs=skew())

    def three_by_hand() -> None:
        g3(ROW)
        mon3.observe(ROW)
        t3.decide(p)
        lim3.allow(ROW["merchant"])

    suite.ladder(
        {
            "three mechanisms: guard(model) + by hand": three_by_hand,
            "three mechanisms: in a guard": lambda: three(ROW),
        },
        baseline="three mechanisms: guard(model) + by hand",
        notes={
            "three mechanisms: in a guard": "dynamic threshold, keyed limit, skew monitor (5 %); "
            "target: at most +1 µs"
        },
    )
    suite.ladder(
        {
            "five mechanisms: the sum of the parts": parts,
            "five mechanisms: in a guard": lambda: five(ROW),
        },
        baseline="five mechanisms: the sum of the parts",
    )


ONE_BITS = np.float64(1.0).view(np.uint64)


def predict_batch_checked(rows: np.ndarray) -> np.ndarray:
    """The bare call with the check a guard makes: every score in [0, 1], no NaN."""
    scores = predict_batch(rows)
    # The cheapest exact-enough test: one reduction over the scores' bits.
    if scores.view(np.uint64).max() > ONE_BITS:
        raise ValueError("a score is off [0, 1]")
    return scores


def batch(suite: Suite) -> None:
    """A 1,000-row batch through a logistic model."""
    g = gr.guard(model=MODEL, returns=gr.Probability)(predict_batch)
    fixed = gr.Threshold(0.5, scale=gr.Probability)
    t = gr.guard(model=MODEL, returns=gr.Probability, threshold=fixed)(predict_batch)
    suite.ladder(
        {
            "batch, bare + the same check": lambda: predict_batch_checked(BATCH),
            "batch, bare": lambda: predict_batch(BATCH),
            "batch, guard(model)": lambda: g(BATCH),
            "batch, guard(threshold=fixed)": lambda: t(BATCH),
        },
        baseline="batch, bare + the same check",
        number=300,
        notes={
            "batch, bare + the same check": "scores in [0, 1] checked in one reduction",
            "batch, guard(model)": "target: at most 1.2x the bare call with the same check",
        },
    )


class _Drop(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def sdk(suite: Suite) -> None:
    """With the OpenTelemetry SDK and a BatchSpanProcessor (an exporter that drops)."""
    provider = TracerProvider()
    processor = BatchSpanProcessor(_Drop())
    provider.add_span_processor(processor)
    g = guarded()
    gr.configure(hooks=[gr.instrumentation.OpenTelemetryHook(tracer_provider=provider)])
    try:
        suite.ladder(
            {
                "SDK: bare call": lambda: predict(ROW),
                "SDK: guard(model), batch processor": lambda: g(ROW),
            },
            baseline="SDK: bare call",
            number=500,
            notes={
                "SDK: guard(model), batch processor": "wall time: the export thread competes "
                "with the calls, so this figure moves with load"
            },
        )
    finally:
        gr.configure(hooks=[])
        processor.shutdown()


def main() -> None:
    gr.configure(hooks=[])
    print(f"_{machine()}_\n")
    suites = [
        ("Mechanism ladder (hooks off)", ladder),
        ("Each mechanism: in a guard vs by hand", alone),
        ("Batch", batch),
        ("OpenTelemetry SDK", sdk),
    ]
    for title, run in suites:
        # The SDK exports on a thread of its own: wall time counts its share.
        suite = Suite(title, clock=WALL if run is sdk else CPU)
        run(suite)
        print(suite.table())
        print()


if __name__ == "__main__":
    main()
