"""Events: small frozen values that hooks receive.

Every event has a ``kind`` (a stable dotted name for log queries and span
events), a ``level`` (``"info"``, ``"warning"`` or ``"error"``) and a
``source``: the kind and name of the mechanism that emitted it, its guard and
its model. Raw input values never appear in an event.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import attrs

from ._call import Source
from ._model import ModelRef

__all__ = [
    "ConsumerUndeclared",
    "Event",
    "Level",
    "MachineryError",
    "OutOfScale",
    "PauseChanged",
    "PredictionMade",
]

Level = Literal["info", "warning", "error"]


@attrs.frozen
class Event:
    """Base class of all events.

    ``source`` says who emitted it (:class:`~guardrail.mechanisms.Source`);
    it is keyword-only and comes first in :meth:`to_fields`.
    """

    kind: ClassVar[str] = "event"
    level: ClassVar[Level] = "info"
    source: Source = attrs.field(kw_only=True)

    def to_fields(self) -> dict[str, Any]:
        """Flat, JSON-ready fields for a log line or a span event.

        The source comes first, as ``source.kind``, ``source.name``,
        ``guard``, ``model.name`` and ``model.version``.
        """
        source = self.source
        model = source.model
        out: dict[str, Any] = {
            "source.kind": source.kind,
            "source.name": source.name,
            "guard": source.guard,
            "model.name": None if model is None else model.name,
            "model.version": None if model is None else model.version,
        }
        for name, value in attrs.asdict(self, recurse=False).items():
            if name == "source":
                continue
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
    consumer: str
    prediction_id: str


@attrs.frozen
class OutOfScale(Event):
    """A predict function returned a value outside its declared scale."""

    kind: ClassVar[str] = "prediction.out_of_scale"
    level: ClassVar[Level] = "error"
    scale: str
    detail: str


@attrs.frozen
class MachineryError(Event):
    """A part of a guard failed; the prediction went through unchanged.

    The source is the part that failed; ``error`` is the exception's type
    name only (its message may hold raw input values).
    """

    kind: ClassVar[str] = "machinery.error"
    level: ClassVar[Level] = "error"
    error: str


@attrs.frozen
class PauseChanged(Event):
    """A switch was paused or resumed: a guard's actions (the kill switch), all
    guards' (source kind ``"process"``), a limit's actions or a threshold's
    adaptation.
    """

    kind: ClassVar[str] = "pause.changed"
    level: ClassVar[Level] = "warning"
    paused: bool
    reason: str
