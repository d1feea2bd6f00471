"""The guard decorator: overhead over a bare call, with and without telemetry.

Run: ``python benchmarks/bench_guard.py``
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
from _harness import CPU, WALL, Suite, format_difference, machine
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

import guardrail as gr

MODEL = gr.ModelRef(name="fraud", version="1")
ROW = {"amount": 12.5, "country": "FR"}
WEIGHTS = np.random.default_rng(0).normal(size=20)
BATCH = np.random.default_rng(1).normal(size=(1000, 20))


def predict(row: dict[str, Any]) -> float:
    return 0.3


def predict_batch(rows: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(rows @ WEIGHTS)))


HIDDEN = np.random.default_rng(2).normal(size=(20, 64)) / 5
OUT = np.random.default_rng(3).normal(size=64) / 8


def predict_mlp(rows: np.ndarray) -> np.ndarray:
    """A small neural network: 20 features, one hidden layer of 64."""
    return 1.0 / (1.0 + np.exp(-(np.tanh(rows @ HIDDEN) @ OUT)))


async def predict_async(row: dict[str, Any]) -> float:
    return 0.3


def wraps_decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


class _Drop(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _time_async(
    suite: Suite,
    name: str,
    fn: Callable[..., Coroutine[Any, Any, Any]],
    baseline: str | None = None,
) -> None:
    number = 10_000

    async def loop() -> None:
        for _ in range(number):
            await fn(ROW)

    def sample() -> float:
        start = time.thread_time()
        asyncio.run(loop())
        return (time.thread_time() - start) / number

    suite.sample(name, sample, baseline=baseline, note="one event loop per round of 10,000 awaits")


def _hand_instrumented(
    tracer_provider: Any, meter_provider: Any
) -> Callable[[dict[str, Any]], float]:
    """What a user would write without guardrail: a span, attributes, two metrics."""
    tracer = tracer_provider.get_tracer("by-hand")
    meter = meter_provider.get_meter("by-hand")
    counter = meter.create_counter("predictions")
    histogram = meter.create_histogram("score")

    def traced(row: dict[str, Any]) -> float:
        with tracer.start_as_current_span("predict", kind=SpanKind.INTERNAL) as span:
            score = predict(row)
            span.set_attribute("model.name", MODEL.name)
            span.set_attribute("model.version", MODEL.version)
            span.set_attribute("guard", "predict")
            span.set_attribute("config.fingerprint", "0" * 64)
            span.set_attribute("scale", "probability")
            span.set_attribute("prediction.id", "x-1")
            span.set_attribute("score", score)
            labels = {"guard": "predict", "model.name": MODEL.name, "model.version": MODEL.version}
            counter.add(1, labels)
            histogram.record(score, labels)
            return score

    return traced


def main() -> None:
    suite = Suite("Guard overhead", clock=CPU)
    number = 50_000
    suite.time("bare call", lambda: predict(ROW), number=number)
    wrapped = wraps_decorator(predict)
    suite.time(
        "functools.wraps decorator", lambda: wrapped(ROW), number=number, baseline="bare call"
    )

    gr.configure(hooks=[])
    guarded = gr.guard(model=MODEL, returns=gr.Probability)(predict)
    suite.time(
        "guard(model=...), hooks off", lambda: guarded(ROW), number=number, baseline="bare call"
    )

    gr.configure(hooks=None)  # the defaults: structlog + OpenTelemetry, no SDK set
    guarded_default = gr.guard(model=MODEL, returns=gr.Probability)(predict)
    suite.time(
        "guard(model=...), default hooks, no SDK",
        lambda: guarded_default(ROW),
        number=number,
        baseline="bare call",
    )

    threshold = gr.Threshold(0.5, scale=gr.Probability, model=MODEL)
    decide = gr.guard(model=MODEL, returns=gr.Probability, threshold=threshold)(predict)
    suite.time(
        "guard(threshold=...), no SDK", lambda: decide(ROW), number=number, baseline="bare call"
    )

    suite.time("bare batch call, 1,000 rows", lambda: predict_batch(BATCH), number=2_000)
    guarded_batch = gr.guard(model=MODEL, returns=gr.Probability)(predict_batch)
    suite.time(
        "guard batch call, 1,000 rows",
        lambda: guarded_batch(BATCH),
        number=2_000,
        baseline="bare batch call, 1,000 rows",
    )

    # BLAS may run the network's matrix products on several threads: wall time.
    suite.time(
        "bare batch call, 1,000 rows, 20x64 network",
        lambda: predict_mlp(BATCH),
        number=100,
        clock=WALL,
    )
    guarded_mlp = gr.guard(model=MODEL, returns=gr.Probability)(predict_mlp)
    suite.time(
        "guard batch call, 1,000 rows, 20x64 network",
        lambda: guarded_mlp(BATCH),
        number=100,
        baseline="bare batch call, 1,000 rows, 20x64 network",
        clock=WALL,
    )

    _time_async(suite, "bare async call", predict_async)
    guarded_async = gr.guard(model=MODEL, returns=gr.Probability)(predict_async)
    _time_async(suite, "guard async call, no SDK", guarded_async, baseline="bare async call")

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(_Drop()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    by_hand = _hand_instrumented(tracer_provider, meter_provider)
    suite.time(
        "by hand: the same span, attributes and metrics, OTel SDK",
        lambda: by_hand(ROW),
        number=2_000,
    )
    gr.configure(
        hooks=[
            gr.instrumentation.OpenTelemetryHook(
                tracer_provider=tracer_provider, meter_provider=meter_provider
            )
        ]
    )
    suite.time(
        "guard(model=...), OTel SDK + dropping exporter",
        lambda: guarded_default(ROW),
        number=2_000,
        baseline="bare call",
    )
    _time_async(suite, "guard async call, OTel SDK", guarded_async, baseline="bare async call")
    gr.configure(hooks=None)

    default = suite.get("guard(model=...), default hooks, no SDK")
    batch = suite.get("guard batch call, 1,000 rows")
    mlp = suite.get("guard batch call, 1,000 rows, 20x64 network")
    print(f"_{machine()}_\n")
    print(suite.table())
    print()
    assert default.difference is not None
    assert batch.ratio_median is not None
    assert mlp.ratio_median is not None
    print(
        "- guard overhead over the bare call, default hooks, no SDK: "
        f"{format_difference(default.difference)} (median of the rounds)"
    )
    print(
        f"- batch overhead at 1,000 rows, logistic model: {(batch.ratio_median - 1) * 100:+.1f} %"
    )
    print(f"- batch overhead at 1,000 rows, 20x64 network: {(mlp.ratio_median - 1) * 100:+.1f} %")


if __name__ == "__main__":
    main()
