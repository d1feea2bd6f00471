"""What a hook is: the two protocols guardrail's instrumentation is built on.

Kept apart from the hook implementations and the settings so that every
module may import them: this one imports nothing of guardrail at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._call import Call
    from ._events import Event

__all__ = ["CallHook", "Hook"]


@runtime_checkable
class Hook(Protocol):
    """Receives guardrail's events.

    A hook is any object with an ``emit(event)`` method. A hook with a true
    ``wants_predictions`` attribute also receives one
    :class:`~guardrail.instrumentation.PredictionMade` per guarded call; the
    others receive only the events that say something happened (a limit
    tripped, skew was detected, ...). A hook that raises is counted and
    otherwise ignored.
    """

    def emit(self, event: Event) -> None:
        """Handle one event."""


@runtime_checkable
class CallHook(Hook, Protocol):
    """A hook that also opens a scope around each guarded call and takes metrics.

    :class:`~guardrail.instrumentation.OpenTelemetryHook` is one: a span per
    call, counters and histograms. Whether a configured hook is a call hook
    is decided once, by this protocol, when it is configured. Guards call the
    methods in this order::

        scope = hook.start_call(guard, config_fingerprint)
        ...                                     # the predict function, the mechanisms
        hook.machinery_error(guard, component)  # for each part that failed, if any
        hook.end_call(scope, call, error, paused)

    A method that raises counts as a machinery error of the guard (see
    :meth:`guardrail.Guard.stats`) and never breaks the call.
    """

    @property
    def needs_sdk(self) -> bool:
        """True if the hook records nothing until an OpenTelemetry SDK is set globally.

        Guards and limits then skip the hook cheaply while no SDK is set
        (the default :class:`~guardrail.instrumentation.OpenTelemetryHook`);
        a hook with its own destination says False.
        """

    def start_call(self, guard: str, config_fingerprint: str) -> Any:
        """Open the scope of one call of *guard*; what it returns is passed to :meth:`end_call`."""

    def end_call(self, scope: Any, call: Call, error: BaseException | None, paused: bool) -> None:
        """Close *scope*: *call* holds what was predicted and decided.

        *error* is what the predict function or a policy raised (the call
        raises it after this), *paused* whether a kill switch was on.
        """

    def machinery_error(self, guard: str, component: str) -> None:
        """Count one failure of *component* of *guard* (the prediction went through)."""

    def add(self, instrument: str, amount: int, attributes: Mapping[str, str]) -> None:
        """Add *amount* to the counter named *instrument* (e.g. ``guardrail.limit.allowed``).

        Mechanisms count through this method, so that an empty hook list
        records nothing. *attributes* identify the series, e.g.
        ``{"guardrail.limit": "block_card"}``.
        """
