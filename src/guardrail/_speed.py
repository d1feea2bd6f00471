"""The speed tricks of the predict path, in one place, each with what it buys.

Figures are from ``python benchmarks/run.py`` on a shared 2-core machine;
they are ratios or differences measured in the same run.

The tricks that must live beside the code they speed up, listed here:

* ``Prediction`` and ``Decision`` are records built on a tuple
  (``_prediction.py``): ``tuple.__new__`` with all fields at once costs about
  0.12 µs, where an attrs frozen class setting nine slots cost 0.93 µs per
  decision.
* A guard composes its quiet sync path once, when it is built
  (``Guard._bind_finish_quiet``): each step is a local of a closure chosen
  for the mechanisms it has, and the decision is built as its record. With a
  dynamic threshold, a keyed limit and a skew monitor a call went from
  +1.4 µs to about +0.5 µs over the same mechanisms called by hand; a fixed
  threshold is compared inline and a single limit called directly.
* An action limit deciding one row (``ActionLimit._acquire_one``) returns one
  tuple as its receipt instead of a list of them, builds its veto reason once,
  and a guard with one limit drops the receipt (nothing after the last limit
  can veto): a keyed limit in a guard went from 4.3x to about 2.45x the
  guard plus the limit called by hand.
* :func:`batch_check` takes a predict function's result array as it is when
  one vectorized test shows it is on its scale (below).
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["Counter", "batch_check", "take_over"]


class Counter:
    """A thread-safe event counter whose increment is one C call.

    ``add()`` is ``next()`` on an :func:`itertools.count`, atomic under the
    GIL and about 40 ns cheaper than taking a lock per call. Reading the
    count advances it too, so :meth:`value` subtracts its own reads.

    >>> calls = Counter()
    >>> for _ in range(2):
    ...     _ = calls.add()
    >>> calls.value(), calls.value()
    (2, 2)
    """

    __slots__ = ("__weakref__", "_count", "_lock", "_reads", "add")

    def __init__(self) -> None:
        self._count = itertools.count()
        self._reads = 0
        self._lock = threading.Lock()
        #: Count one event (returns a number that means nothing to the caller).
        self.add = self._count.__next__
        _COUNTERS.add(self)

    def value(self) -> int:
        """How many times :attr:`add` was called."""
        with self._lock:
            n = next(self._count) - self._reads
            self._reads += 1
        return n

    def _after_fork(self) -> None:
        # The parent's lock may have been held by a thread that is gone here.
        self._lock = threading.Lock()


_COUNTERS: weakref.WeakSet[Counter] = weakref.WeakSet()


def _reset_locks() -> None:
    for counter in list(_COUNTERS):
        counter._after_fork()


os.register_at_fork(after_in_child=_reset_locks)


_getrefcount = getattr(sys, "getrefcount", None)


def take_over(raw: NDArray[Any]) -> None:
    """Make a result array that nobody else holds read-only, so it needs no copy.

    A typed batch must not change under its prediction, so a value copies any
    array someone else could still write to. The array a predict function
    returns is usually a fresh temporary: when the guard's own variable is its
    only reference (counted: the caller's variable, this argument and
    getrefcount's own), locking it is as safe as a copy and costs nothing
    (a 1,000-row batch: the copy was about 0.3 µs of a 2 µs call).
    ``setflags(write=False)`` is about 0.15 µs cheaper than setting
    ``flags.writeable``, which builds a flags object first.
    """
    if (
        _getrefcount is not None
        and _getrefcount(raw) <= 3
        and raw.base is None
        and raw.flags.writeable
    ):
        raw.setflags(write=False)


_FLOAT64 = np.dtype(np.float64)
_UINT64 = np.dtype(np.uint64)
_ONE_BITS = np.float64(1.0).view(np.uint64)
_INF = float("inf")


# The ufuncs' reduce, called directly: ndarray.max() and .min() go through a
# Python wrapper first (about 0.1 µs a call).
_max = np.maximum.reduce
_min = np.minimum.reduce


def _probabilities_ok(raw: NDArray[Any]) -> bool:
    # Read as unsigned integers, the floats in [+0.0, 1.0] are exactly those
    # whose bits are at most 1.0's: one reduction instead of min and max.
    return bool(_max(raw.view(_UINT64)) <= _ONE_BITS)


def _log_odds_ok(raw: NDArray[Any]) -> bool:
    lowest = _min(raw)  # NaN if any element is NaN
    return bool(lowest == lowest)


def _scores_ok(raw: NDArray[Any]) -> bool:
    # One BLAS dot product instead of min and max: the sum of squares is finite
    # only if every element is (a large finite score that overflows it just
    # takes the full check).
    return bool(raw @ raw < _INF)


_BATCH_CHECKS: dict[str, Callable[[NDArray[Any]], bool]] = {
    "probability": _probabilities_ok,
    "log-odds": _log_odds_ok,
    "score": _scores_ok,
}


def batch_check(scale: str) -> Callable[[object], bool]:
    """A test that a predict function's result is a batch already on *scale*.

    True only for a non-empty, read-only, 1-D float64 array that owns its data
    (see :func:`take_over`) and passes the scale's check in one vectorized
    step; a guard then wraps it as it is. False means "not sure": the value's
    constructor decides, with its full checks and messages (a ``-0.0``
    probability, say, or an empty batch). A 1,000-row probability batch:
    about 1 µs for the check against 1.7 µs through the constructor.

    >>> import numpy as np
    >>> ok = batch_check("probability")
    >>> batch = np.array([0.25, 1.0]); batch.flags.writeable = False
    >>> ok(batch), ok(np.array([0.25, 1.5]))
    (True, False)
    """
    on_scale = _BATCH_CHECKS[scale]
    ndarray, float64 = np.ndarray, _FLOAT64

    def check(raw: object) -> bool:
        return (
            type(raw) is ndarray
            and raw.dtype is float64
            and raw.ndim == 1
            and raw.base is None
            and raw.size > 0
            and not raw.flags.writeable
            and on_scale(raw)
        )

    return check
