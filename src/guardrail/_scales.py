"""Numbers that know their scale: Score, LogOdds and Probability.

A value holds either one float or a 1-D ``float64`` numpy array (a batch); the
type parameter says which. Values on different scales never mix: the
operators are typed to their own class, so ``LogOdds(1.0) + Probability(0.3)``
is rejected by mypy and raises :class:`~guardrail.errors.ScaleError` at run time.

Getting the raw number back is explicit: ``.value``. There is no
``__float__``, so ``float(Probability(0.3))`` is a ``TypeError``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, final

import attrs
import numpy as np

from ._errors import OutOfScaleError, ScaleError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["SCALES", "LogOdds", "Probability", "Score", "V"]

#: The payload of a value: one float, or a 1-D float64 array (a batch).
V = TypeVar("V", float, "NDArray[np.float64]")

_set = object.__setattr__
_FLOAT64 = np.dtype(np.float64)
_ONE_BITS = np.float64(1.0).view(np.uint64)


def _batch(value: np.ndarray[Any, Any], scale: str) -> NDArray[np.float64]:
    """Check that *value* can be a batch and return a read-only float64 copy.

    A batch may be empty: an idle micro-batch scores no rows.
    """
    if value.ndim != 1:
        raise OutOfScaleError(f"a {scale} batch must be a 1-D array, got shape {value.shape}")
    if value.dtype.kind not in "fiu":
        raise ScaleError(f"a {scale} batch must hold real numbers, got dtype {value.dtype}")
    if value.dtype is _FLOAT64 or value.dtype == _FLOAT64:
        if not value.flags.writeable and value.base is None:
            return value  # Nobody can change it under us: no copy needed.
        out = value.copy()
    else:
        out = value.astype(np.float64)
    out.flags.writeable = False
    return out


def _scalar(value: object, scale: str) -> float:
    """Turn an int or a numpy number into a float; refuse everything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ScaleError(
            f"a {scale} holds a real number or a 1-D numpy array, got {type(value).__name__}"
        )
    return float(value)


def _first_bad(values: NDArray[np.float64], ok: NDArray[np.bool_]) -> str:
    index = int(np.argmin(ok))
    return f"element {index} is {values[index]!r}"


class _BatchKey:
    """Stands for a batch in ``==`` and ``hash``: equal arrays, never hashable."""

    __slots__ = ("array",)

    def __init__(self, array: NDArray[np.float64]) -> None:
        self.array = array

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _BatchKey) and bool(np.array_equal(self.array, other.array))

    def __hash__(self) -> int:
        raise TypeError("a batch is not hashable")


def _eq_key(value: float | NDArray[np.float64]) -> object:
    """attrs' equality key: the float itself, or a key comparing arrays."""
    return value if isinstance(value, float) else _BatchKey(value)


class ScaleValue(Generic[V]):
    """Behaviour shared by the scale classes; not part of the public API."""

    __slots__ = ()
    scale: ClassVar[str]
    value: V

    if TYPE_CHECKING:

        def __init__(self, value: V) -> None: ...

    @property
    def is_batch(self) -> bool:
        """True if this value holds a numpy array rather than one float."""
        return type(self.value) is not float

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"


@final
@attrs.frozen(init=False, repr=False)
class Score(ScaleValue[V]):
    """A model score on a scale of its own (a margin, a rank, a regression).

    Any finite real number; NaN and infinities are refused. A score has no
    conversion to probability: that needs a calibration the score does not
    know.

    >>> Score(3.2).value
    3.2
    """

    scale: ClassVar[str] = "score"
    value: V = attrs.field(eq=_eq_key)

    def __init__(self, value: V) -> None:
        if type(value) is float:
            if not -math.inf < value < math.inf:
                raise OutOfScaleError(f"a score must be finite, got {value!r}")
            _set(self, "value", value)
            return
        if isinstance(value, np.ndarray):
            batch = _batch(value, "score")
            # min/max propagate NaN: two reductions check NaN and both infinities.
            if batch.size and not (-math.inf < batch.min() and batch.max() < math.inf):
                ok = np.isfinite(batch)
                raise OutOfScaleError(f"a score must be finite; {_first_bad(batch, ok)}")
            _set(self, "value", batch)
            return
        Score.__init__(self, _scalar(value, "score"))


@final
@attrs.frozen(init=False, repr=False)
class LogOdds(ScaleValue[V]):
    """The log-odds ``log(p / (1 - p))`` of an event.

    Log-odds add (combining independent evidence) and scale by a float.
    ``+inf`` and ``-inf`` are allowed: they are the log-odds of a certain and
    of an impossible event, and they are what ``Probability(1.0)`` and
    ``Probability(0.0)`` convert to. NaN is refused.

    >>> (LogOdds(0.5) + LogOdds(0.7)).value
    1.2
    >>> LogOdds(0.0).to_probability()
    Probability(0.5)
    """

    scale: ClassVar[str] = "log-odds"
    value: V = attrs.field(eq=_eq_key)

    def __init__(self, value: V) -> None:
        if type(value) is float:
            if value != value:
                raise OutOfScaleError("log-odds must not be NaN")
            _set(self, "value", value)
            return
        if isinstance(value, np.ndarray):
            batch = _batch(value, "log-odds")
            lowest = batch.min() if batch.size else 0.0  # NaN if any element is NaN
            if lowest != lowest:
                ok = ~np.isnan(batch)
                raise OutOfScaleError(f"log-odds must not be NaN; {_first_bad(batch, ok)}")
            _set(self, "value", batch)
            return
        LogOdds.__init__(self, _scalar(value, "log-odds"))

    def to_probability(self) -> Probability[V]:
        """The probability ``1 / (1 + exp(-x))``, exact at both ends."""
        x = self.value
        if type(x) is float:
            if x >= 0:
                p = 1.0 / (1.0 + math.exp(-x))
            else:
                e = math.exp(x)
                p = e / (1.0 + e)
            return _trusted(Probability, p)
        with np.errstate(over="ignore"):
            # exp(-x) overflows to inf for x < -709, which gives exactly 0.0.
            out = 1.0 / (1.0 + np.exp(-x))
        out.flags.writeable = False
        return _trusted(Probability, out)

    def __add__(self, other: LogOdds[V]) -> LogOdds[V]:
        if type(other) is not LogOdds:
            raise _mix("add", self, other)
        return LogOdds(self.value + other.value)

    def __sub__(self, other: LogOdds[V]) -> LogOdds[V]:
        if type(other) is not LogOdds:
            raise _mix("subtract", self, other)
        return LogOdds(self.value - other.value)

    def __mul__(self, factor: float) -> LogOdds[V]:
        if isinstance(factor, bool) or not isinstance(
            factor, (int, float, np.integer, np.floating)
        ):
            raise ScaleError(f"log-odds scale by a real number, not by {type(factor).__name__}")
        return LogOdds(self.value * float(factor))

    __rmul__ = __mul__

    def __neg__(self) -> LogOdds[V]:
        return _trusted(LogOdds, -self.value)


@final
@attrs.frozen(init=False, repr=False)
class Probability(ScaleValue[V]):
    """A probability in ``[0, 1]``.

    Probabilities do not add; convert to :class:`LogOdds` to combine
    evidence. NaN and values outside ``[0, 1]`` are refused.

    >>> Probability(0.5).to_log_odds()
    LogOdds(0.0)
    """

    scale: ClassVar[str] = "probability"
    value: V = attrs.field(eq=_eq_key)

    def __init__(self, value: V) -> None:
        if type(value) is float:
            if not 0.0 <= value <= 1.0:
                raise OutOfScaleError(f"a probability must lie in [0, 1], got {value!r}")
            _set(self, "value", value)
            return
        if isinstance(value, np.ndarray):
            batch = _batch(value, "probability")
            # One reduction instead of min and max: read as unsigned integers,
            # the floats in [+0.0, 1.0] are exactly those whose bits are at
            # most 1.0's (a sign bit or a NaN's exponent makes them larger).
            # Only -0.0 fails that and is a valid probability: the exact test
            # below then decides.
            if (
                batch.size
                and batch.view(np.uint64).max() > _ONE_BITS
                and not (batch.min() >= 0.0 and batch.max() <= 1.0)
            ):
                ok = (batch >= 0.0) & (batch <= 1.0)
                raise OutOfScaleError(f"a probability must lie in [0, 1]; {_first_bad(batch, ok)}")
            _set(self, "value", batch)
            return
        Probability.__init__(self, _scalar(value, "probability"))

    def to_log_odds(self) -> LogOdds[V]:
        """The log-odds ``log(p / (1 - p))``; 0 and 1 give -inf and +inf."""
        p = self.value
        if type(p) is float:
            if p == 0.0:
                return _trusted(LogOdds, -math.inf)
            if p == 1.0:
                return _trusted(LogOdds, math.inf)
            return _trusted(LogOdds, math.log(p / (1.0 - p)))
        with np.errstate(divide="ignore"):
            out = np.log(p / (1.0 - p))
        out.flags.writeable = False
        return _trusted(LogOdds, out)


_AnyValue = TypeVar("_AnyValue", bound=ScaleValue[Any])


def _trusted(cls: type[_AnyValue], value: object) -> _AnyValue:
    """Build a value that is known to be on its scale, skipping the checks."""
    self = cls.__new__(cls)
    _set(self, "value", value)
    return self


def _mix(verb: str, left: ScaleValue[Any], right: object) -> ScaleError:
    return ScaleError(
        f"cannot {verb} {type(left).__name__} and {type(right).__name__}: they are on different "
        "scales; convert one explicitly (to_probability() / to_log_odds())"
    )


#: Scale classes by their ``scale`` name, for reading serialized values.
SCALES: dict[str, type[ScaleValue[Any]]] = {cls.scale: cls for cls in (Score, LogOdds, Probability)}
