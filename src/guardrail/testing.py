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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ._call import Call
from ._config import CONFIG
from ._events import Event
from ._inputs import Inputs
from ._model import ModelRef
from ._prediction import Prediction, Threshold
from ._scales import Probability
from .instrumentation import configure, get_config

__all__ = ["CapturingHook", "capture_events", "deterministic", "make_call"]

_TEST_MODEL = ModelRef(name="test", version="0")


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


def make_call(
    inputs: Any = None,
    act: Any = None,
    *,
    prediction: Prediction[Any] | float | Sequence[float] | None = None,
    threshold: Threshold[Any] | None = None,
    model: ModelRef | None = None,
    features: Sequence[str] | None = None,
    guard: str = "test",
) -> Call:
    """A :class:`~guardrail.mechanisms.Call` as a guard would hand it to a mechanism.

    For testing a mechanism of your own without a guard: *inputs* are read
    as a guard reads them, and *act* (a bool, or a sequence of them for a
    batch) is the decision, as if a decider had made it. *prediction* is a
    :class:`~guardrail.Prediction` or the probability (or probabilities) of
    one; by default it is made from *act*.

    >>> from guardrail.testing import make_call
    >>> call = make_call([{"user": "a"}, {"user": "b"}], act=[True, False])
    >>> call.batch_size, call.act.tolist()
    (2, [True, False])
    >>> call.veto("mine", [True, True])
    >>> call.act.tolist(), call.reasons
    ([False, False], ['mine'])
    """
    model = model or _TEST_MODEL
    call = Call(guard, model, Inputs.of(inputs, features))
    flags: bool | list[bool] | None = None
    if act is not None:
        flags = bool(act) if np.ndim(act) == 0 else [bool(a) for a in act]
    if prediction is None and flags is not None:
        prediction = (
            (0.9 if flags else 0.1)
            if isinstance(flags, bool)
            else [0.9 if a else 0.1 for a in flags]
        )
    if prediction is not None and not isinstance(prediction, Prediction):
        value = prediction if isinstance(prediction, float) else np.asarray(prediction, float)
        prediction = Prediction(Probability(value), model)
    call.prediction = prediction
    if flags is not None:
        if threshold is None:
            threshold = Threshold(0.5, scale=Probability, model=model)
        call.decide(threshold, flags if isinstance(flags, bool) else np.array(flags))
    return call
