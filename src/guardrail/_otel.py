"""OpenTelemetry: the hook, and the cheap test for "is an SDK configured?".

guardrail depends on ``opentelemetry-api`` only. With no SDK configured every
API call is a no-op, but not a free one (starting a no-op span costs several
microseconds), so guards ask :func:`sdk_configured` first: one global read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as _metrics_state
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._events import Event

if TYPE_CHECKING:
    from ._call import Call

__all__ = ["CallScope", "OpenTelemetryHook", "metrics_configured", "sdk_configured"]

_SCOPE = "guardrail"
_HISTOGRAM_SAMPLE = 64


def sdk_configured() -> bool:
    """True once a global tracer provider is set (``trace.set_tracer_provider``).

    ``trace.get_tracer_provider()`` would answer too, but it reads the
    environment on every call (about a microsecond); the global it falls back
    on is what we read instead.
    """
    return trace._TRACER_PROVIDER is not None


def metrics_configured() -> bool:
    """True once a global meter provider is set (``metrics.set_meter_provider``)."""
    return _metrics_state._METER_PROVIDER is not None


class CallScope:
    """One guarded call's span, open while the predict function runs."""

    __slots__ = ("hook", "span", "token")

    def __init__(self, hook: OpenTelemetryHook, span: Any, token: Any) -> None:
        self.hook, self.span, self.token = hook, span, token


class OpenTelemetryHook:
    """Spans, metrics and span events through the OpenTelemetry API.

    One span (kind ``INTERNAL``) per guarded call, carrying the model, the
    output scale, the configuration fingerprint and, for one row, the score;
    attributes are built only when the span records. Metrics: a counter of
    predictions per model and version (``guardrail.predictions``), a
    histogram of scores (``guardrail.score``; up to 64 evenly spaced scores
    of a batch), a counter of machinery errors
    (``guardrail.machinery_errors``) and a counter of events by kind
    (``guardrail.events``).

    Args:
        tracer_provider: Use this provider instead of the global one.
        meter_provider: Use this provider instead of the global one.

    With neither given, the global providers are used and nothing is paid
    until one is set.
    """

    wants_predictions = False

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._tracer: Any = None
        self._instruments: tuple[Any, Any, Any, Any] | None = None

    @property
    def explicit(self) -> bool:
        """True if this hook was given its own providers."""
        return self._tracer_provider is not None or self._meter_provider is not None

    def _tracing(self) -> bool:
        return self._tracer_provider is not None or sdk_configured()

    def _metering(self) -> bool:
        return self._meter_provider is not None or metrics_configured()

    def _get_tracer(self) -> Any:
        tracer = self._tracer
        if tracer is None:
            provider = self._tracer_provider or trace.get_tracer_provider()
            tracer = self._tracer = provider.get_tracer(_SCOPE)
        return tracer

    def _get_instruments(self) -> tuple[Any, Any, Any, Any]:
        instruments = self._instruments
        if instruments is None:
            provider = self._meter_provider
            meter = metrics.get_meter(_SCOPE) if provider is None else provider.get_meter(_SCOPE)
            instruments = self._instruments = (
                meter.create_counter(
                    "guardrail.predictions", unit="{prediction}", description="guarded predictions"
                ),
                meter.create_histogram("guardrail.score", description="scores of predictions"),
                meter.create_counter(
                    "guardrail.machinery_errors",
                    unit="{error}",
                    description="failures of guard machinery (the prediction went through)",
                ),
                meter.create_counter(
                    "guardrail.events", unit="{event}", description="guardrail events by kind"
                ),
            )
        return instruments

    # -- per call ---------------------------------------------------------------

    def start_call(self, guard: str, config_fingerprint: str) -> CallScope | None:
        """Open the call's span and make it current (None when nothing traces)."""
        if not self._tracing():
            return None
        span = self._get_tracer().start_span(f"guardrail {guard}", kind=SpanKind.INTERNAL)
        if span.is_recording():
            span.set_attribute("guardrail.guard", guard)
            span.set_attribute("guardrail.config.fingerprint", config_fingerprint)
        token = otel_context.attach(trace.set_span_in_context(span))
        return CallScope(self, span, token)

    def end_call(
        self, scope: CallScope | None, call: Call, error: BaseException | None, killed: bool
    ) -> None:
        """Record the call's outcome on its span and in the metrics, then close it."""
        model = call.model
        if scope is not None:
            span = scope.span
            try:
                if span.is_recording():
                    _describe(span, call, killed)
                    if error is not None:
                        span.record_exception(error)
                        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            finally:
                otel_context.detach(scope.token)
                span.end()
        if error is None and call.prediction is not None and self._metering():
            predictions, scores, _, _ = self._get_instruments()
            labels = {
                "guardrail.guard": call.guard,
                "guardrail.model.name": model.name,
                "guardrail.model.version": model.version,
            }
            raw = call.prediction.value.value
            if isinstance(raw, float):
                predictions.add(1, labels)
                if raw == raw and abs(raw) != float("inf"):
                    scores.record(raw, labels)
            elif isinstance(raw, np.ndarray):
                predictions.add(int(raw.size), labels)
                step = max(1, raw.size // _HISTOGRAM_SAMPLE)
                for x in raw[::step][:_HISTOGRAM_SAMPLE].tolist():
                    if np.isfinite(x):
                        scores.record(x, labels)

    def machinery_error(self, guard: str, component: str) -> None:
        """Count one failure of guard machinery."""
        if self._metering():
            self._get_instruments()[2].add(
                1, {"guardrail.guard": guard, "guardrail.component": component}
            )

    # -- events -------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Count *event* and attach it to the current span if it records."""
        if self._metering():
            self._get_instruments()[3].add(
                1, {"guardrail.event": event.kind, "guardrail.level": event.level}
            )
        if self._tracing():
            span = trace.get_current_span()
            if span.is_recording():
                span.add_event(event.kind, _attributes(event.to_fields()))

    def __repr__(self) -> str:
        return f"OpenTelemetryHook(explicit={self.explicit})"


def _describe(span: Any, call: Call, killed: bool) -> None:
    """Set the span attributes that describe a finished call (never raw inputs)."""
    model = call.model
    span.set_attribute("guardrail.model.name", model.name)
    span.set_attribute("guardrail.model.version", model.version)
    if call.batch_size is not None:
        span.set_attribute("guardrail.batch_size", call.batch_size)
    if killed:
        span.set_attribute("guardrail.paused", True)
    prediction = call.prediction
    if prediction is None:
        return
    value = prediction.value
    span.set_attribute("guardrail.scale", value.scale)
    span.set_attribute("guardrail.prediction.id", prediction.id)
    raw = value.value
    if isinstance(raw, float):
        span.set_attribute("guardrail.score", raw)
    if call.threshold is not None:
        span.set_attribute("guardrail.threshold.value", call.threshold.value)
        span.set_attribute("guardrail.threshold.version", call.threshold.version)
    act = call.act
    if isinstance(act, bool):
        span.set_attribute("guardrail.act", act)
    elif isinstance(act, np.ndarray):
        span.set_attribute("guardrail.act_count", int(np.count_nonzero(act)))
    if call.reasons:
        span.set_attribute("guardrail.reasons", list(call.reasons))
    if call.arm is not None:
        span.set_attribute("guardrail.arm", call.arm)
    if call.degraded:
        span.set_attribute("guardrail.degraded", True)


def _attributes(fields: dict[str, Any]) -> dict[str, Any]:
    """Keep only values OpenTelemetry accepts as attributes."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        plain = isinstance(value, (str, bool, int, float))
        if plain or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            out[f"guardrail.{key}"] = value
        else:
            out[f"guardrail.{key}"] = str(value)
    return out
