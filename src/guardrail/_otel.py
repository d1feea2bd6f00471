"""OpenTelemetry: the hook, and the cheap test for "is an SDK configured?".

guardrail depends on ``opentelemetry-api`` only, through its public API. With
no SDK configured every API call is a no-op, but not a free one (starting a
no-op span costs several microseconds), so guards ask :func:`sdk_configured`
first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from opentelemetry import context as otel_context
from opentelemetry import environment_variables, metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._events import Event
from ._privacy import PRIVACY
from ._version import __version__

if TYPE_CHECKING:
    from ._call import Call

__all__ = ["CallScope", "OpenTelemetryHook", "sdk_configured"]

_SCOPE = "guardrail"
_HISTOGRAM_SAMPLE = 64

#: Whether the environment names a provider the API will load on first use;
#: read by the first check (as the SDK's auto-configuration reads it at start).
_provider_in_environment: bool | None = None


def sdk_configured() -> bool:
    """True once an OpenTelemetry SDK is set for traces or metrics.

    That is: a global tracer or meter provider was set
    (``trace.set_tracer_provider`` / ``metrics.set_meter_provider``), or the
    environment names one (``OTEL_PYTHON_TRACER_PROVIDER`` /
    ``OTEL_PYTHON_METER_PROVIDER``), which the API then loads on first use.

    This is the one place that reads the API's globals: the public
    ``trace.get_tracer_provider()`` answers too, but reads the environment on
    every call (about a microsecond), and this runs on every guarded call.
    An API version without those globals is asked through its public
    functions instead. The environment is read once, by the first check.
    """
    try:
        if trace._TRACER_PROVIDER is not None or metrics._internal._METER_PROVIDER is not None:
            return True
    except AttributeError:
        tracer_provider = trace.get_tracer_provider()
        meter_provider = metrics.get_meter_provider()
        return not isinstance(
            tracer_provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        ) or not (
            # The API's own providers (the proxy, the no-op one) live in its package.
            isinstance(meter_provider, metrics.NoOpMeterProvider)
            or type(meter_provider).__module__.startswith("opentelemetry.metrics")
        )
    global _provider_in_environment
    if _provider_in_environment is None:
        _provider_in_environment = (
            environment_variables.OTEL_PYTHON_TRACER_PROVIDER in os.environ
            or environment_variables.OTEL_PYTHON_METER_PROVIDER in os.environ
        )
    return _provider_in_environment


class CallScope:
    """One guarded call's span, open while the predict function runs."""

    __slots__ = ("hook", "span", "token")

    def __init__(self, hook: OpenTelemetryHook, span: Any, token: Any) -> None:
        self.hook, self.span, self.token = hook, span, token


class OpenTelemetryHook:
    """Spans, metrics and span events through the OpenTelemetry API (a :class:`CallHook`).

    One span (kind ``INTERNAL``) per guarded call, carrying the model, the
    output scale, the configuration fingerprint and, for one row, the score;
    attributes are built only when the span records. Metrics: a counter of
    predictions per model and version (``guardrail.predictions``), a
    histogram of scores (``guardrail.score``; up to 64 evenly spaced scores
    of a batch), a counter of machinery errors
    (``guardrail.machinery_errors``), a counter of events by kind
    (``guardrail.events``) and the mechanisms' counters, such as the action
    limits' ``guardrail.limit.allowed``, ``guardrail.limit.denied`` and
    ``guardrail.limit.degraded`` (attribute ``guardrail.limit``).

    The tracer and the meter are named ``guardrail``, with guardrail's version.

    Args:
        tracer_provider: Use this provider instead of the global one.
        meter_provider: Use this provider instead of the global one.

    With neither given, the global providers are used and nothing is paid
    until an SDK is set (:attr:`needs_sdk` is true).
    """

    wants_predictions = False

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._tracer: Any = None
        self._meter: Any = None
        self._instruments: tuple[Any, Any, Any, Any] | None = None
        self._counters: dict[str, Any] = {}

    @property
    def explicit(self) -> bool:
        """True if this hook was given its own providers."""
        return self._tracer_provider is not None or self._meter_provider is not None

    @property
    def needs_sdk(self) -> bool:
        """True if this hook uses the global providers (it records once an SDK is set)."""
        return not self.explicit

    def _tracing(self) -> bool:
        return self._tracer_provider is not None or sdk_configured()

    def _metering(self) -> bool:
        return self._meter_provider is not None or sdk_configured()

    def _get_tracer(self) -> Any:
        tracer = self._tracer
        if tracer is None:
            provider = self._tracer_provider or trace.get_tracer_provider()
            tracer = self._tracer = provider.get_tracer(_SCOPE, __version__)
        return tracer

    def _get_meter(self) -> Any:
        meter = self._meter
        if meter is None:
            provider = self._meter_provider
            meter = self._meter = (
                metrics.get_meter(_SCOPE, __version__)
                if provider is None
                else provider.get_meter(_SCOPE, __version__)
            )
        return meter

    def _get_instruments(self) -> tuple[Any, Any, Any, Any]:
        instruments = self._instruments
        if instruments is None:
            meter = self._get_meter()
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

    def _counter(self, instrument: str) -> Any:
        counter = self._counters.get(instrument)
        if counter is None:
            unit, description = _COUNTERS.get(instrument, ("", ""))
            counter = self._get_meter().create_counter(
                instrument, unit=unit, description=description
            )
            # setdefault: two threads may create it; the meter returns the same series.
            counter = self._counters.setdefault(instrument, counter)
        return counter

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
        self, scope: CallScope | None, call: Call, error: BaseException | None, paused: bool
    ) -> None:
        """Record the call's outcome on its span and in the metrics, then close it."""
        model = call.model
        if scope is not None:
            span = scope.span
            try:
                if span.is_recording():
                    _describe(span, call, paused)
                    if error is not None:
                        _record_exception(span, error)
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

    def add(self, instrument: str, amount: int, attributes: Mapping[str, str]) -> None:
        """Add *amount* to the OpenTelemetry counter *instrument* (created on first use)."""
        if self._metering():
            self._counter(instrument).add(amount, attributes)

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


def _describe(span: Any, call: Call, paused: bool) -> None:
    """Set the span attributes that describe a finished call (never raw inputs)."""
    model = call.model
    span.set_attribute("guardrail.model.name", model.name)
    span.set_attribute("guardrail.model.version", model.version)
    if call.batch_size is not None:
        span.set_attribute("guardrail.batch_size", call.batch_size)
    if paused:
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
        # float() and int(): a threshold may hold numpy scalars, which OpenTelemetry refuses.
        span.set_attribute("guardrail.threshold.value", float(call.threshold.value))
        span.set_attribute("guardrail.threshold.version", int(call.threshold.version))
    act = call.act
    if isinstance(act, bool):
        span.set_attribute("guardrail.act", act)
    elif isinstance(act, np.ndarray):
        span.set_attribute("guardrail.act_count", int(np.count_nonzero(act)))
    if call.reasons:
        span.set_attribute("guardrail.reasons", list(call.reasons))
    arm = call.arm
    if isinstance(arm, str):
        span.set_attribute("guardrail.arm", arm)
    elif arm is not None:  # a batch: an array of arms
        span.set_attribute("guardrail.holdout_count", int(np.count_nonzero(arm == "holdout")))
    if call.degraded:
        span.set_attribute("guardrail.degraded", True)


def _record_exception(span: Any, error: BaseException) -> None:
    """The span's exception event: the type only, unless messages are opted in.

    ``span.record_exception`` would copy the message and the traceback's text,
    which often hold input values.
    """
    kind = type(error)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    if PRIVACY.exception_messages:
        span.record_exception(error)
    else:
        span.add_event("exception", {"exception.type": name, "exception.escaped": True})
    span.set_status(Status(StatusCode.ERROR, kind.__name__))


#: Units and descriptions of the counters mechanisms add to through :meth:`add`.
_COUNTERS = {
    "guardrail.limit.allowed": ("{action}", "actions allowed"),
    "guardrail.limit.denied": ("{action}", "actions denied"),
    "guardrail.limit.degraded": ("{decision}", "decisions made by a failure policy"),
}

_PLAIN = (str, bool, int, float)


def _attributes(fields: dict[str, Any]) -> dict[str, Any]:
    """Keep values OpenTelemetry accepts as attributes; write the others as text.

    Accepted are str, bool, int and float, and lists of one of those types
    (numpy scalars are not: they become text too, except float64, a float).
    """
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if type(value) in _PLAIN or (isinstance(value, list) and _homogeneous(value)):
            out[f"guardrail.{key}"] = value
        elif isinstance(value, float):  # numpy.float64
            out[f"guardrail.{key}"] = float(value)
        else:
            out[f"guardrail.{key}"] = str(value)
    return out


def _homogeneous(values: list[Any]) -> bool:
    kinds = {type(v) for v in values}
    return len(kinds) <= 1 and kinds <= set(_PLAIN)
