"""Helpers for testing code that uses guardrail.

>>> import guardrail as gr
>>> from guardrail.testing import capture_events
>>> model = gr.ModelRef(name="fraud", version="1", consumers=("blocker",))
>>> with capture_events() as events:
...     _ = gr.Prediction(gr.Probability(0.2), model).consume(by="mailer")
>>> events[0].kind
'consumer.undeclared'
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ._config import CONFIG
from ._events import Event
from .instrumentation import configure, get_config

__all__ = ["CapturingHook", "capture_events", "deterministic"]


class CapturingHook:
    """A hook that keeps every event it receives in ``events`` (thread-safe)."""

    wants_predictions = True

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        """Keep *event*."""
        with self._lock:
            self.events.append(event)


@contextmanager
def capture_events() -> Iterator[list[Event]]:
    """Replace the active hooks with one that collects events into a list.

    The previous hooks are restored on exit. Prediction events are included.
    """
    hook = CapturingHook()
    previous = get_config().hooks
    configure(hooks=[hook])
    try:
        yield hook.events
    finally:
        configure(hooks=previous)


@contextmanager
def deterministic() -> Iterator[None]:
    """Make ids (and the mechanisms' sampling) reproducible inside the block.

    Prediction ids become ``test-1``, ``test-2``, ... and restart at each entry.
    """
    previous = CONFIG.deterministic
    CONFIG.deterministic = True
    CONFIG._reset_ids()
    try:
        yield
    finally:
        CONFIG.deterministic = previous
        CONFIG._reset_ids()
