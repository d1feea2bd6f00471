"""Events: small frozen values that hooks receive.

Every event has a ``kind`` (a stable dotted name for log queries and span
events) and a ``level`` (``"info"``, ``"warning"`` or ``"error"``). Raw input
values never appear in an event.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import attrs

from ._model import ModelRef

__all__ = [
    "ConsumerUndeclared",
    "Event",
    "KillSwitchChanged",
    "MachineryError",
    "OutOfScale",
    "PredictionMade",
]

Level = Literal["info", "warning", "error"]


@attrs.frozen
class Event:
    """Base class of all events."""

    kind: ClassVar[str] = "event"
    level: ClassVar[Level] = "info"

    def to_fields(self) -> dict[str, Any]:
        """Flat, JSON-ready fields for a log line or a span event."""
        out: dict[str, Any] = {}
        for name, value in attrs.asdict(self, recurse=False).items():
            if isinstance(value, ModelRef):
                out[f"{name}.name"] = value.name
                out[f"{name}.version"] = value.version
            elif isinstance(value, tuple):
                out[name] = list(value)
            else:
                out[name] = value
        return out


@attrs.frozen
class PredictionMade(Event):
    """A guarded call returned a prediction (sent only to hooks that ask)."""

    kind: ClassVar[str] = "prediction.made"
    guard: str
    model: ModelRef
    scale: str
    prediction_id: str
    score: float | None
    batch_size: int | None
    duration_s: float


@attrs.frozen
class ConsumerUndeclared(Event):
    """A prediction was consumed by a consumer its model did not declare."""

    kind: ClassVar[str] = "consumer.undeclared"
    level: ClassVar[Level] = "warning"
    model: ModelRef
    consumer: str
    prediction_id: str


@attrs.frozen
class OutOfScale(Event):
    """A predict function returned a value outside its declared scale."""

    kind: ClassVar[str] = "prediction.out_of_scale"
    level: ClassVar[Level] = "error"
    guard: str
    model: ModelRef
    scale: str
    detail: str


@attrs.frozen
class MachineryError(Event):
    """A part of a guard failed; the prediction went through unchanged."""

    kind: ClassVar[str] = "machinery.error"
    level: ClassVar[Level] = "error"
    guard: str
    component: str
    error: str


@attrs.frozen
class KillSwitchChanged(Event):
    """A kill switch was turned on or off (``guard`` is None for the global one)."""

    kind: ClassVar[str] = "kill_switch.changed"
    level: ClassVar[Level] = "warning"
    guard: str | None
    killed: bool
    reason: str
