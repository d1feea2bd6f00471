"""Privacy by default: no input value, key or user text leaves through telemetry or reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

import guardrail as gr
from guardrail._app.report import Report
from guardrail.instrumentation import configure
from guardrail.testing import CapturingHook

MARKER = "zq-SECRET-4111111111111111"
MODEL = gr.ModelRef(name="fraud", version="1")


class Telemetry:
    """The real OpenTelemetry SDK with in-memory exporters, and a structlog hook."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.otel = gr.instrumentation.OpenTelemetryHook(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def exported(self) -> str:
        """Every span (attributes, events, status) and metric point, as text."""
        spans = [span.to_json() for span in self.spans.get_finished_spans()]
        metrics = self.reader.get_metrics_data()
        return "\n".join(spans) + ("" if metrics is None else metrics.to_json())


def reference() -> gr.Profile:
    rng = np.random.default_rng(0)
    return gr.Profile.from_columns(
        {
            "amount": rng.lognormal(3, 1, 2_000),
            "country": np.array(["FR", "DE", "ES", "IT"] * 500, dtype=object),
        }
    )


def run_guard(tmp_path: Path, rows: list[dict[str, Any]]) -> tuple[str, Any, Any]:
    """Serve *rows* through a guard with every mechanism; return what left it as text."""
    telemetry = Telemetry()
    capturing = CapturingHook()
    configure(hooks=[gr.instrumentation.StructlogHook(predictions=True), telemetry.otel, capturing])
    events = capturing.events
    ref = reference()
    skew = gr.SkewMonitor(reference=ref, every=50, seconds=None, min_samples=10)
    threshold = gr.DynamicThreshold(target_rate=0.3, initial=gr.Probability(0.5), step=0.5)
    holdout = gr.Holdout(fraction=0.3, unit=lambda row: row["user"], salt="s")
    limit = gr.ActionLimit(
        "block", max_actions=3, per="1h", key=lambda row: row["user"], on_exceed="report"
    )
    outcomes = gr.OutcomeMonitor(
        slice=lambda row: row["country"], min_outcomes=5, check_every=5, thresholds=[threshold]
    )
    log_path = tmp_path / "decisions.jsonl"
    log = gr.DecisionLog(gr.holdout.JsonLinesSink(log_path), holdout=holdout)

    @gr.guard(
        model=MODEL, returns=gr.Probability, inputs=skew, threshold=threshold,
        holdout=holdout, limits=[limit], outcomes=[outcomes, log],
    )  # fmt: skip
    def predict(row: dict[str, Any]) -> float:
        if row.get("fail"):
            raise ValueError(f"cannot score {row['user']!r}")
        return 0.9 if row["country"] == MARKER else 0.2

    with capture_logs() as logs:
        for row in rows:
            try:
                decision = predict(row)
            except ValueError:
                continue
            outcomes.record_outcome(decision.prediction.id, 0)
        skew.check()
        serving = skew.serving_profile()
        report = gr.compare(ref, serving)
        page = Report.from_skew(
            report, reference=ref, serving=serving, violations=skew.violations()
        ).to_html()
    log.close()
    text = "\n".join(
        [
            telemetry.exported(),
            repr(logs),
            repr(events),
            json.dumps([e.to_fields() for e in events], default=repr),
            page,
            log_path.read_text(encoding="utf-8"),
            repr(skew.violations()),
            repr(outcomes.report()),
        ]
    )
    telemetry.tracer_provider.shutdown()
    telemetry.meter_provider.shutdown()
    return text, events, skew


def rows_with_marker() -> list[dict[str, Any]]:
    """Inputs holding the marker as a value, a key, a slice, a unit id and an error message."""
    out: list[dict[str, Any]] = []
    for i in range(120):
        row: dict[str, Any] = {"amount": 10.0 + i, "country": "FR", "user": f"u{i % 7}"}
        if i % 3 == 0:
            row["country"] = MARKER  # a category value and a slice key
        if i % 4 == 0:
            row[MARKER] = MARKER  # an unexpected feature name and value
        if i % 5 == 0:
            row["user"] = MARKER  # a unit id and a limit key
        if i % 11 == 0:
            row["fail"] = True  # the model's exception message quotes it
            row["user"] = MARKER
        out.append(row)
    return out


class TestMarker:
    def test_the_marker_appears_nowhere(self, tmp_path: Path) -> None:
        """With every mechanism on, the marker is in no span, event, log line, metric or report."""
        text, events, skew = run_guard(tmp_path, rows_with_marker())
        kinds = {e.kind for e in events}
        # Something was reported: the test would see a leak there.
        assert {"skew.inputs_invalid", "limit.exceeded", "outcomes.bias_out_of_range"} <= kinds
        assert "guardrail.predictions" in text
        assert any(p == "unexpected" for _, p in skew.violations())
        assert "exception" in text
        assert MARKER not in text
        assert MARKER.encode().hex() not in text

    def test_opting_in_shows_names(self, tmp_path: Path) -> None:
        """configure(redact=str) keeps unexpected names and slice keys as they are (bounded)."""
        configure(redact=str)
        text, _, _ = run_guard(tmp_path, rows_with_marker())
        assert MARKER in text


class TestExceptionMessages:
    def guarded(self) -> Any:
        @gr.guard(model=MODEL, returns=gr.Probability)
        def predict(row: dict[str, Any]) -> float:
            raise ValueError(f"bad row {row['card']}")

        return predict

    def spans(self, exception_messages: bool) -> list[Any]:
        telemetry = Telemetry()
        configure(hooks=[telemetry.otel], exception_messages=exception_messages)
        with pytest.raises(ValueError, match=MARKER):
            self.guarded()({"card": MARKER})
        return list(telemetry.spans.get_finished_spans())

    def test_type_only_by_default(self) -> None:
        """The span records the exception's type, not its message or traceback text."""
        (span,) = self.spans(exception_messages=False)
        (event,) = span.events
        assert event.name == "exception"
        assert dict(event.attributes or {})["exception.type"] == "ValueError"
        assert span.status.description == "ValueError"
        assert MARKER not in span.to_json()

    def test_messages_opt_in(self) -> None:
        """configure(exception_messages=True) records the message too."""
        (span,) = self.spans(exception_messages=True)
        assert MARKER in span.to_json()


class TestRedaction:
    def test_a_user_function_redacts(self) -> None:
        """A redact function of the user's decides what an unexpected name becomes, cut to 64."""
        configure(redact=lambda text: "name:" + text[::-1] * 20)
        monitor = gr.SkewMonitor(reference=reference())
        monitor.observe({"amount": 1.0, "country": "FR", "abc": 1})
        ((name, _),) = [k for k in monitor.violations() if k[1] == "unexpected"]
        assert name.startswith("name:cba")
        assert len(name) == 64

    def test_default_digests_are_stable_and_keyed(self) -> None:
        """By default equal names give equal digests in a process, unlike a plain hash."""
        import hashlib

        from guardrail._privacy import digest_text

        assert digest_text("fr") == digest_text("fr") != digest_text("de")
        assert digest_text("fr")[1:] != hashlib.blake2b(b"fr", digest_size=6).hexdigest()

    def test_a_failing_redact_function_hides_the_text(self) -> None:
        """A redact function that raises gives a placeholder, never the text, never an error."""

        def broken(text: str) -> str:
            raise RuntimeError(text)

        configure(redact=broken)
        monitor = gr.OutcomeMonitor(slice=lambda row: row["country"])
        p = gr.Prediction(gr.Probability(0.5), MODEL)
        monitor.record(p, inputs={"country": MARKER})
        monitor.record_outcome(p.id, 1)
        assert list(monitor.report().bias_by_slice) == ["<redaction failed>"]

    def test_a_key_whose_str_raises(self) -> None:
        """A slice key whose __str__ raises is kept under a placeholder naming its type."""

        class Odd:
            def __str__(self) -> str:
                raise RuntimeError("no")

        monitor = gr.OutcomeMonitor(slice=lambda row: Odd())
        p = gr.Prediction(gr.Probability(0.5), MODEL)
        monitor.record(p, inputs={"country": "FR"})
        monitor.record_outcome(p.id, 1)
        assert list(monitor.report().bias_by_slice) == ["<unprintable Odd>"]

    def test_bad_settings(self) -> None:
        """redact must be callable and exception_messages a bool."""
        with pytest.raises(gr.ConfigError):
            configure(redact="yes")  # type: ignore[arg-type]
        with pytest.raises(gr.ConfigError):
            configure(exception_messages=1)  # type: ignore[arg-type]


def test_structlog_stays_unconfigured() -> None:
    """The privacy settings configure no logging."""
    before = structlog.is_configured()
    configure(redact=str, exception_messages=True)
    assert structlog.is_configured() == before
