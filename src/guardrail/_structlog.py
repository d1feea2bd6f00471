"""The structlog hook: one log line per event."""

from __future__ import annotations

from typing import Any

from ._events import Event

__all__ = ["StructlogHook"]


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
