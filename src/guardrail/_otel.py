"""OpenTelemetry: the hook, and the cheap test for "is an SDK configured?".

guardrail depends on ``opentelemetry-api`` only. With no SDK configured every
API call is a no-op, but not a free one (starting a no-op span costs several
microseconds), so guards ask :func:`sdk_configured` first: one global read.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as _metrics_state

from ._events import Event

__all__ = ["OpenTelemetryHook", "metrics_configured", "sdk_configured"]

_SCOPE = "guardrail"


def sdk_configured() -> bool:
    """True once a tracer provider is set (``trace.set_tracer_provider``).

    ``trace.get_tracer_provider()`` would answer too, but it reads the
    environment on every call (about a microsecond); the global it falls back
    on is what we read instead.
    """
    return trace._TRACER_PROVIDER is not None


def metrics_configured() -> bool:
    """True once a meter provider is set (``metrics.set_meter_provider``)."""
    return _metrics_state._METER_PROVIDER is not None


class OpenTelemetryHook:
    """Counts events as OpenTelemetry metrics and adds them to the current span.

    Instruments are created from the global meter provider on first use, so a
    provider set after ``import guardrail`` is picked up.
    """

    wants_predictions = False

    def __init__(self) -> None:
        self._events: Any = None

    def emit(self, event: Event) -> None:
        """Count *event* and attach it to the current span if it records."""
        if metrics_configured():
            counter = self._events
            if counter is None:
                counter = self._events = metrics.get_meter(_SCOPE).create_counter(
                    "guardrail.events", unit="{event}", description="guardrail events by kind"
                )
            counter.add(1, {"guardrail.event": event.kind, "guardrail.level": event.level})
        if sdk_configured():
            span = trace.get_current_span()
            if span.is_recording():
                span.add_event(event.kind, _attributes(event.to_fields()))

    def __repr__(self) -> str:
        return "OpenTelemetryHook()"


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
