"""The hook protocol, event delivery, and the structlog hook."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ._config import CONFIG
from ._events import Event

__all__ = ["Hook", "StructlogHook", "default_hooks", "emit"]


@runtime_checkable
class Hook(Protocol):
    """Receives guardrail's events.

    A hook is any object with an ``emit(event)`` method. A hook with a true
    ``wants_predictions`` attribute also receives one
    :class:`~guardrail.PredictionMade` per guarded call; the others receive
    only the events that say something happened (a limit tripped, skew was
    detected, ...). A hook that raises is counted and otherwise ignored.
    """

    def emit(self, event: Event) -> None:
        """Handle one event."""


def emit(event: Event) -> None:
    """Send *event* to every active hook; a failing hook never raises here."""
    for hook in CONFIG.hooks:
        try:
            hook.emit(event)
        except Exception:  # noqa: BLE001 - a hook must never break the caller
            CONFIG.hook_errors += 1


class StructlogHook:
    """Logs events through structlog, at the event's level.

    Args:
        logger: The structlog logger to use; ``structlog.get_logger("guardrail")``
            by default (looked up on first use, so importing configures nothing).
        predictions: Log one line per prediction too (off by default: at
            serving rates that is a lot of lines).
    """

    def __init__(self, logger: Any = None, *, predictions: bool = False) -> None:
        self._logger = logger
        self.wants_predictions = predictions

    def emit(self, event: Event) -> None:
        """Log *event* as ``event.kind`` with its fields."""
        logger = self._logger
        if logger is None:
            import structlog

            logger = self._logger = structlog.get_logger("guardrail")
        getattr(logger, event.level)(event.kind, **event.to_fields())

    def __repr__(self) -> str:
        return f"StructlogHook(predictions={self.wants_predictions})"


def default_hooks() -> tuple[Hook, ...]:
    """structlog for events, OpenTelemetry for spans and metrics."""
    from ._otel import OpenTelemetryHook

    return (StructlogHook(), OpenTelemetryHook())
