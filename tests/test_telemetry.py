"""Spans, metrics and structlog events, with the real OpenTelemetry SDK."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from structlog.testing import capture_logs

import guardrail as gr
from guardrail.instrumentation import get_config

MODEL = gr.ModelRef(name="fraud", version="3.1.0", consumers=("card-blocker",))


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.hook = gr.instrumentation.OpenTelemetryHook(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        out: dict[str, list[Any]] = {}
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    out[metric.name] = list(metric.data.data_points)
        return out


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    gr.configure(hooks=[telemetry.hook])
    yield telemetry
    telemetry.tracer_provider.shutdown()
    telemetry.meter_provider.shutdown()


def guarded(**kwargs: Any) -> Any:
    @gr.guard(model=MODEL, returns=gr.Probability, name="fraud-guard", **kwargs)
    def predict(row: dict[str, Any]) -> float:
        if row.get("fail"):
            raise ValueError("model exploded")
        return float(row.get("score", 0.5))

    return predict


class TestSpans:
    def test_one_internal_span_per_call_with_attributes(self, otel: Telemetry) -> None:
        """Each call is one INTERNAL span with model, scale, score and fingerprint."""
        predict = guarded(threshold=gr.Threshold(0.8, scale=gr.Probability, version=2))
        d = predict({"score": 0.9, "card_number": "4111111111111111"})
        (span,) = otel.spans.get_finished_spans()
        assert span.kind is SpanKind.INTERNAL
        assert span.name == "guardrail fraud-guard"
        attrs = dict(span.attributes or {})
        assert attrs["guardrail.model.name"] == "fraud"
        assert attrs["guardrail.model.version"] == "3.1.0"
        assert attrs["guardrail.scale"] == "probability"
        assert attrs["guardrail.score"] == 0.9
        assert attrs["guardrail.prediction.id"] == d.prediction.id
        assert attrs["guardrail.threshold.version"] == 2
        assert attrs["guardrail.act"] is True
        assert attrs["guardrail.config.fingerprint"] == gr.guard_of(predict).fingerprint

    def test_raw_inputs_never_reach_telemetry(self, otel: Telemetry) -> None:
        """No input value appears in any span attribute or event."""
        guarded()({"score": 0.5, "card_number": "4111111111111111"})
        (span,) = otel.spans.get_finished_spans()
        assert "4111111111111111" not in repr(span.to_json())

    def test_exception_recorded_and_propagated(self, otel: Telemetry) -> None:
        """The predict function's exception is on the span, status ERROR, and re-raised."""
        with pytest.raises(ValueError, match="exploded"):
            guarded()({"fail": True})
        (span,) = otel.spans.get_finished_spans()
        assert span.status.status_code is StatusCode.ERROR
        assert [e.name for e in span.events] == ["exception"]

    def test_inner_spans_are_children(self, otel: Telemetry) -> None:
        """A span opened inside the predict function is a child of the guard's span."""
        tracer = otel.tracer_provider.get_tracer("model")

        @gr.guard(model=MODEL, returns=gr.Probability, name="parent")
        def predict(row: object) -> float:
            with tracer.start_as_current_span("feature-lookup"):
                return 0.5

        predict({})
        inner, outer = otel.spans.get_finished_spans()
        assert inner.name == "feature-lookup"
        assert inner.parent is not None
        assert inner.parent.span_id == outer.context.span_id

    def test_pause_visible(self, otel: Telemetry) -> None:
        """A paused guard marks its spans."""
        predict = guarded(threshold=gr.Threshold(0.1, scale=gr.Probability))
        gr.guard_of(predict).pause("incident")
        predict({"score": 0.9})
        (span,) = otel.spans.get_finished_spans()
        assert (span.attributes or {})["guardrail.paused"] is True
        assert (span.attributes or {})["guardrail.reasons"] == ("paused",)

    def test_guard_events_become_span_events(self, otel: Telemetry) -> None:
        """An event emitted during the call is attached to the call's span."""

        class Reports:
            name = "reports"

            kind = "test"
            source = gr.mechanisms.Source("test", "monitor")

            def observe_call(self, call: gr.mechanisms.Call) -> None:
                gr.Prediction(gr.Probability(0.1), MODEL).consume(by="mailer")

        guarded(inputs=Reports())({})
        (span,) = otel.spans.get_finished_spans()
        assert [e.name for e in span.events] == ["consumer.undeclared"]
        assert dict(span.events[0].attributes or {})["guardrail.consumer"] == "mailer"

    def test_policy_error_before_the_call_closes_the_span(self, otel: Telemetry) -> None:
        """A monitor raising its chosen policy still ends the span and restores context."""
        from opentelemetry import trace

        class Strict:
            name = "schema"

            kind = "test"
            source = gr.mechanisms.Source("test", "monitor")

            def observe_call(self, call: gr.mechanisms.Call) -> None:
                raise gr.PolicyError("missing feature 'amount'")

        with pytest.raises(gr.PolicyError):
            guarded(inputs=Strict())({})
        (span,) = otel.spans.get_finished_spans()
        assert span.status.status_code is StatusCode.ERROR
        assert trace.get_current_span() is trace.INVALID_SPAN


class TestMetrics:
    def test_prediction_counter_and_score_histogram(self, otel: Telemetry) -> None:
        """Predictions are counted per model/version and scores go into a histogram."""
        import numpy as np

        predict = guarded()
        predict({"score": 0.2})
        predict({"score": 0.4})

        @gr.guard(model=MODEL, returns=gr.Probability, name="fraud-guard")
        def batch(rows: object) -> Any:
            return np.full(10, 0.5)

        batch(np.zeros((10, 2)))
        metrics = otel.metrics()
        (count,) = metrics["guardrail.predictions"]
        assert count.value == 12
        assert count.attributes["guardrail.model.version"] == "3.1.0"
        (histogram,) = metrics["guardrail.score"]
        assert histogram.count == 12
        assert histogram.sum == pytest.approx(0.2 + 0.4 + 10 * 0.5)

    def test_machinery_errors_counted(self, otel: Telemetry) -> None:
        """A failing mechanism shows in guardrail.machinery_errors."""

        class Broken:
            name = "broken"

            kind = "test"
            source = gr.mechanisms.Source("test", "monitor")

            def observe_call(self, call: gr.mechanisms.Call) -> None:
                raise RuntimeError("boom")

        p = guarded(inputs=Broken())({"score": 0.7})
        assert p.value == gr.Probability(0.7)
        (errors,) = otel.metrics()["guardrail.machinery_errors"]
        assert errors.value == 1
        assert errors.attributes["guardrail.component"] == "test:broken"


class TestBrokenTelemetry:
    def test_a_failing_hook_never_breaks_the_call(self) -> None:
        """A call hook that raises is counted; the prediction is returned."""

        class Exploding:
            needs_sdk = False

            def emit(self, event: gr.instrumentation.Event) -> None:
                raise RuntimeError("exporter down")

            def start_call(self, guard: str, fingerprint: str) -> None:
                raise RuntimeError("exporter down")

            def end_call(self, *args: object) -> None:
                raise RuntimeError("exporter down")

            def machinery_error(self, *args: object) -> None:
                raise RuntimeError("exporter down")

            def add(self, *args: object) -> None:
                raise RuntimeError("exporter down")

        gr.configure(hooks=[Exploding()])
        p = guarded()({"score": 0.6})
        assert p.value == gr.Probability(0.6)


class TestStructlog:
    def test_events_logged_at_their_level(self) -> None:
        """StructlogHook logs events by kind at their level; predictions only if asked."""
        gr.configure(hooks=[gr.instrumentation.StructlogHook(structlog.get_logger("test"))])
        with capture_logs() as logs:
            guarded()({"score": 0.5})
            gr.Prediction(gr.Probability(0.1), MODEL).consume(by="mailer")
        assert [(entry["event"], entry["log_level"]) for entry in logs] == [
            ("consumer.undeclared", "warning")
        ]
        assert logs[0]["consumer"] == "mailer"
        assert logs[0]["model.name"] == "fraud"

    def test_predictions_logged_on_request(self) -> None:
        """StructlogHook(predictions=True) logs one line per prediction."""
        gr.configure(
            hooks=[gr.instrumentation.StructlogHook(structlog.get_logger("t"), predictions=True)]
        )
        with capture_logs() as logs:
            guarded()({"score": 0.5})
        assert [entry["event"] for entry in logs] == ["prediction.made"]


class TestNoSDK:
    def test_default_hooks_with_no_sdk_take_the_fast_path(self) -> None:
        """With the default hooks and no SDK set, a guarded call opens no span."""
        gr.configure(hooks=None)
        predict = guarded()
        hook = next(
            h for h in get_config().hooks if isinstance(h, gr.instrumentation.OpenTelemetryHook)
        )
        hook.start_call = None  # type: ignore[method-assign]  # would fail if called
        p = predict({"score": 0.5})
        assert p.value == gr.Probability(0.5)
        assert gr.guard_of(predict).stats().machinery_errors == 0

    def test_global_sdk_set_after_decorating_is_picked_up(self) -> None:
        """Setting the global tracer provider after decorating starts spans (own process)."""
        code = textwrap.dedent(
            """
            import guardrail as gr
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )
            model = gr.ModelRef(name="m", version="1")

            @gr.guard(model=model, returns=gr.Probability)
            def predict(row):
                return 0.5

            predict({})
            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            predict({})
            print(len(exporter.get_finished_spans()))
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "1"
