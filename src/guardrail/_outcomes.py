"""Late outcomes joined to predictions: prediction bias, calibration, precision."""

from __future__ import annotations

import math
import time
from array import array
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Final

import attrs
import numpy as np

from ._call import Mechanism, Source
from ._durations import parse_duration
from ._errors import ConfigError, LabelError, ScaleError
from ._events import Event
from ._forks import fork_safe_lock
from ._hooks import emit
from ._inputs import rows_of
from ._mechanism_events import (
    CalibrationOutOfRange,
    OutcomesLost,
    PredictionBiasOutOfRange,
    RetrainHookFailed,
)
from ._model import callable_name
from ._prediction import Decision, Prediction
from ._privacy import redact
from ._scales import LogOdds, Probability

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ._call import Call
    from ._guard_config import GuardConfig
    from ._holdout import DecisionLog
    from ._model import ModelRef
    from ._thresholds import DynamicThreshold

__all__ = ["Calibration", "OutcomeMonitor", "OutcomeReport", "calibration", "row_ids"]

#: Slices beyond this many distinct keys are pooled under this key.
OTHER_SLICE: Final = "(other)"


def row_ids(prediction: Prediction[Any]) -> list[str]:
    """The decision ids of a prediction's rows: its id, or ``"<id>:<row>"`` for a batch."""
    raw = prediction.value.value
    if type(raw) is float:
        return [prediction.id]
    return [f"{prediction.id}:{i}" for i in range(raw.size)]


def _probabilities(prediction: Prediction[Any]) -> list[float]:
    value = prediction.value
    if type(value) is LogOdds:
        value = value.to_probability()
    if type(value) is not Probability:
        raise ScaleError(
            "prediction bias needs probabilities: a Score has no probability "
            "without a calibration (record LogOdds or Probability predictions)"
        )
    raw = value.value
    return [raw] if type(raw) is float else raw.tolist()


def _flags(act: object, size: int) -> list[bool | None]:
    if act is None:
        return [None] * size
    if isinstance(act, bool):
        return [act] * size
    return [bool(a) for a in np.asarray(act).tolist()]


def _label(label: object) -> int:
    if isinstance(label, (bool, np.bool_)):
        return int(label)
    if isinstance(label, (int, np.integer)) and label in (0, 1):
        return int(label)
    raise LabelError(f"an outcome label must be 0, 1, True or False, got {label!r}")


def _check_bounds(name: str, bounds: object) -> tuple[float, float]:
    if not isinstance(bounds, tuple) or len(bounds) != 2:
        raise ConfigError(f"{name} must be a (lower, upper) tuple")
    lo, hi = bounds
    for x in (lo, hi):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x):
            raise ConfigError(f"{name} must hold two numbers, got {bounds!r}")
    if not lo < hi:
        raise ConfigError(f"{name} must have lower < upper, got {bounds!r}")
    return float(lo), float(hi)


#: The calibration interval's level: each check's false-alarm probability.
ECE_ALPHA: Final = 0.001
# The Gaussian concentration bound's width at that level, in Lipschitz units.
_ECE_Z: Final = math.sqrt(2.0 * math.log(1.0 / ECE_ALPHA))
_HALF_NORMAL: Final = math.sqrt(2.0 / math.pi)


@attrs.frozen
class Calibration:
    """The expected calibration error of some labelled predictions, with its interval.

    Attributes:
        estimate: The debiased ECE: per bin ``2 |gap| - E|gap + noise|``, the
            plug-in estimate with its bias under label noise removed (Kumar et
            al., 2019, with the Gaussian expectation in closed form).
        lower: The interval's lower end: the true binned ECE is below it with
            probability at most ``ECE_ALPHA`` (0.1 %).
        upper: The upper end, likewise.
        plug_in: The plain estimate ``sum_b w_b |mean label_b - mean prediction_b|``.
        outcomes: Labelled predictions it covers.
        bins: Equal-count bins used.
    """

    estimate: float
    lower: float
    upper: float
    plug_in: float
    outcomes: int
    bins: int


_NO_CALIBRATION: Final = Calibration(math.nan, math.nan, math.nan, math.nan, 0, 0)


def calibration(
    probabilities: NDArray[np.float64], labels: NDArray[np.float64], bins: int = 10
) -> Calibration:
    """The ECE of *probabilities* against 0/1 *labels*, with equal-count *bins*.

    The interval: with ``d_b`` the observed gap of bin ``b`` (weight ``w_b``)
    and ``e_b`` its noise, ``|plug-in - ECE| <= S = sum_b w_b |e_b|``. Each
    ``e_b`` is close to normal with standard deviation at most
    ``s_b = sqrt(max(p_b (1 - p_b), y_b (1 - y_b)) / n_b)`` (``p_b``, ``y_b`` the
    bin's mean prediction and label), so ``E S <= sqrt(2 / pi) sum_b w_b s_b``
    and, ``S`` being Lipschitz in the noise with constant
    ``L = sqrt(sum_b (w_b s_b)^2)``, ``S <= E S + L sqrt(2 ln(1 / alpha))``
    except with probability ``alpha`` (Gaussian concentration). The interval
    is the plug-in estimate plus or minus that bound.

    Every bin holds at least two labels (fewer bins than *bins* below
    ``2 * bins`` labels): a bin's label variance ``y_b (1 - y_b)`` is zero for
    a single label, and a lone positive among rare events (``p_b`` near 0)
    would count as a gap of many standard errors. A single label is no
    evidence either way: its interval is ``[0, 1]``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0, 1, 5000)
    >>> c = calibration(p, (rng.random(5000) < p).astype(float))
    >>> c.lower <= 0.02, c.lower <= c.estimate <= c.upper
    (True, True)
    """
    n = int(probabilities.size)
    if n == 0:
        return _NO_CALIBRATION
    order = np.argsort(probabilities, kind="stable")
    k = max(1, min(bins, n // 2))
    starts = (np.arange(k) * n) // k
    counts = np.diff(np.append(starts, n)).astype(np.float64)
    mean_p = np.add.reduceat(probabilities[order], starts) / counts
    mean_y = np.add.reduceat(labels[order], starts) / counts
    weight = counts / n
    gap = np.abs(mean_y - mean_p)
    sd = np.sqrt(np.maximum(mean_p * (1.0 - mean_p), mean_y * (1.0 - mean_y)) / counts)
    plug_in = float(weight @ gap)
    scaled = weight * sd
    spread = _HALF_NORMAL * float(scaled.sum()) + _ECE_Z * math.sqrt(float(scaled @ scaled))
    # E|N(gap, sd^2)|, the folded normal's mean: what the plug-in estimate
    # would average if the observed gaps were the true ones.
    folded = np.array(
        [
            g
            if s == 0.0
            else s * _HALF_NORMAL * math.exp(-0.5 * (g / s) ** 2)
            + g * math.erf(g / (s * math.sqrt(2.0)))
            for g, s in zip(gap.tolist(), sd.tolist(), strict=True)
        ]
    )
    estimate = max(0.0, float(weight @ (2.0 * gap - folded)))
    if n < 2:
        spread = 1.0
    return Calibration(
        estimate=estimate,
        lower=max(0.0, plug_in - spread),
        upper=min(1.0, plug_in + spread),
        plug_in=plug_in,
        outcomes=n,
        bins=k,
    )


@attrs.frozen
class OutcomeReport:
    """What the joined outcomes say, from :meth:`OutcomeMonitor.report`.

    Attributes:
        outcomes: Labelled predictions the statistics cover (at most *capacity*).
        pending: Predictions waiting for their label.
        mean_prediction: Mean predicted probability over the labelled ones.
        mean_label: Mean observed label.
        bias: ``mean_prediction - mean_label`` (``nan`` with no outcomes).
        bias_by_slice: The same, per slice key.
        ece: Expected calibration error with equal-count bins (the debiased
            estimate of :attr:`calibration`).
        calibration: The ECE with its 99.9 % interval, overall.
        calibration_by_slice: The same, per slice key.
        precision: Mean label among rows whose decision was to act
            (``nan`` when none acted).
        evicted: Predictions dropped unlabelled because *capacity* were waiting.
        expired: Predictions dropped unlabelled because they outlived the ttl.
        unmatched: Labels for unknown or already expired prediction ids.
    """

    outcomes: int
    pending: int
    mean_prediction: float
    mean_label: float
    bias: float
    bias_by_slice: dict[str, float]
    ece: float
    calibration: Calibration
    calibration_by_slice: dict[str, Calibration]
    precision: float
    evicted: int
    expired: int
    unmatched: int


# 99.9 % two-sided: the bias interval's half-width in standard errors.
_BIAS_Z: Final = 3.29


class _Sums:
    __slots__ = ("id", "labels", "n", "next_check", "predictions", "seen", "spread")

    def __init__(self, id: int, first_check: int) -> None:  # noqa: A002 - a slot's name
        #: The slice's number in the ring of slice ids (-1: all traffic).
        self.id = id
        #: Labels joined ever, and the count at which calibration is checked next.
        self.seen = 0
        self.next_check = first_check
        self.n = 0
        self.predictions = 0.0
        self.labels = 0
        # The sum of p (1 - p): n^2 times the variance of the bias of a calibrated model.
        self.spread = 0.0

    def bias(self) -> float:
        return (self.predictions - self.labels) / self.n if self.n else math.nan


class OutcomeMonitor:
    """Joins late labels to predictions and watches bias and calibration.

    Record each prediction (:meth:`record`, or as the last mechanism of a
    guard); when its outcome is known, :meth:`record_outcome` with the same
    id. Unlabelled predictions wait, at most *capacity* of them, for at most
    *ttl*; what falls out is counted and reported
    (:class:`~guardrail.instrumentation.OutcomesLost`), never silently lost. Statistics cover
    the last *capacity* labelled predictions.

    Args:
        capacity: The most predictions kept waiting for a label, and the
            most labelled ones the statistics cover.
        ttl: How long a prediction waits for its label: seconds, or a
            duration such as ``"30d"``.
        slice: A key function on one input row (``lambda row: row["country"]``)
            for bias by slice; at most *max_slices* keys, others pooled.
        bias_bounds: ``(lower, upper)`` for ``mean prediction - mean label``.
        ece_bound: The largest acceptable calibration error; ``None`` skips it.
            The alarm fires when the ECE's 99.9 % interval lies above it.
        bins: Equal-count bins for the calibration error.
        min_outcomes: Labelled predictions (overall, or in a slice) needed
            before an alarm can fire.
        check_every: The fewest labels between two calibration checks of the
            same group (all traffic, or one slice); default a quarter of
            *min_outcomes*. A group is checked at *min_outcomes* labels, then
            each time its labels grow by ``max(check_every, window / 4)``
            (``window``: its labelled predictions in the statistics), so the
            checks come at geometrically growing counts and cost a few
            operations per label. Bias is checked on every label.
        on_retrain: Called with the alarm event when bias or calibration
            leaves its bounds (by the intervals above): the hook for
            "production metrics say retrain". Exceptions from it are counted
            and reported.
        thresholds: Dynamic thresholds paused when a bias alarm fires (a
            rate tracker would otherwise chase a broken model).
        log: A :class:`DecisionLog` (or another mechanism) whose ``after(call)``
            runs with every recorded decision.
        clock: Returns seconds; ``time.monotonic`` by default.
        name: Identifies the monitor in events.

    >>> import guardrail as gr
    >>> monitor = gr.OutcomeMonitor(capacity=1000, ttl="1h")
    >>> model = gr.ModelRef(name="fraud", version="1")
    >>> p = gr.Prediction(gr.Probability(0.8), model)
    >>> monitor.record(p)
    >>> monitor.record_outcome(p.id, 1)
    True
    >>> round(monitor.report().bias, 2)
    -0.2
    """

    kind: ClassVar[str] = "outcomes"

    def __init__(
        self,
        *,
        capacity: int = 100_000,
        ttl: float | str = "7d",
        slice: Callable[[Any], object] | None = None,  # noqa: A002 - the user's word
        bias_bounds: tuple[float, float] = (-0.05, 0.05),
        ece_bound: float | None = 0.1,
        bins: int = 10,
        min_outcomes: int = 200,
        check_every: int | None = None,
        max_slices: int = 1000,
        on_retrain: Callable[[Event], object] | None = None,
        thresholds: Iterable[DynamicThreshold[Any]] = (),
        log: DecisionLog | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "outcomes",
    ) -> None:
        from ._thresholds import DynamicThreshold

        for key, n in (
            ("capacity", capacity),
            ("bins", bins),
            ("min_outcomes", min_outcomes),
            ("check_every", 1 if check_every is None else check_every),
            ("max_slices", max_slices),
        ):
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ConfigError(f"{key} must be a positive int, got {n!r}")
        ttl_seconds = parse_duration(ttl, name="ttl")
        if slice is not None and not callable(slice):
            raise ConfigError("slice must be a function of one input row")
        if ece_bound is not None and (
            isinstance(ece_bound, bool)
            or not isinstance(ece_bound, (int, float))
            or not 0 < ece_bound < 1
        ):
            raise ConfigError(f"ece_bound must lie in (0, 1), got {ece_bound!r}")
        if on_retrain is not None and not callable(on_retrain):
            raise ConfigError("on_retrain must be callable")
        dyn = tuple(thresholds)
        if not all(isinstance(t, DynamicThreshold) for t in dyn):
            raise ConfigError("thresholds must hold DynamicThreshold objects")
        # Checked as a mechanism, not as a DecisionLog: _holdout builds on this
        # module (row ids, rows of a call), so this one does not import it.
        if log is not None and not isinstance(log, Mechanism):
            raise ConfigError("log must be a DecisionLog (a mechanism with after(call))")
        if not isinstance(name, str) or not name:
            raise ConfigError("name must be a non-empty string")
        self.name = name
        #: Who emits this monitor's events (set again when a guard takes it).
        self.source = Source("outcomes", name)
        self._capacity = capacity
        self._ttl = ttl_seconds
        self._slice = slice
        self._bias_bounds = _check_bounds("bias_bounds", bias_bounds)
        self._ece_bound = None if ece_bound is None else float(ece_bound)
        self._bins = bins
        self._min_outcomes = min_outcomes
        self._check_every = max(1, min_outcomes // 4) if check_every is None else check_every
        self._max_slices = max_slices
        self._on_retrain = on_retrain
        self._thresholds = dyn
        self._log = log
        self._clock = clock
        self._lock = fork_safe_lock(self)
        # id -> (probability, acted, slice, recorded at)
        self._pending: OrderedDict[str, tuple[float, bool | None, str | None, float]] = (
            OrderedDict()
        )
        # (probability, label, acted, slice), the last *capacity* labelled ones
        self._joined: deque[tuple[float, int, bool | None, str | None]] = deque()
        # The same predictions and labels as arrays (a ring), for the calibration sort.
        # (array.array: cheap item writes, read by numpy without a copy)
        self._ring_p = array("d", bytes(8 * capacity))
        self._ring_y = array("d", bytes(8 * capacity))
        # The slice number of each (-1: none), to check calibration by slice.
        self._ring_s = array("i", bytes(4 * capacity))
        self._ring_next = 0
        self._all = _Sums(-1, min_outcomes)
        self._slices: dict[str, _Sums] = {}
        self._alarms: set[str | None] = set()
        self._ece_alarms: set[str | None] = set()
        self._model: ModelRef | None = None
        self.evicted = 0
        self.expired = 0
        self.unmatched = 0
        self.invalid_labels = 0
        self.slice_errors = 0
        self.retrain_errors = 0

    # -- settings (read-only: the buffers are sized from them) -------------

    @property
    def capacity(self) -> int:
        """The most predictions kept waiting, and the most labelled ones the statistics cover."""
        return self._capacity

    @property
    def ttl(self) -> float:
        """Seconds a prediction waits for its label."""
        return self._ttl

    @property
    def slice(self) -> Callable[[Any], object] | None:
        """The slice key function on one input row, if any."""
        return self._slice

    @property
    def bias_bounds(self) -> tuple[float, float]:
        """``(lower, upper)`` for ``mean prediction - mean label``."""
        return self._bias_bounds

    @property
    def ece_bound(self) -> float | None:
        """The largest acceptable calibration error (``None``: not checked)."""
        return self._ece_bound

    @property
    def bins(self) -> int:
        """Equal-count bins for the calibration error."""
        return self._bins

    @property
    def min_outcomes(self) -> int:
        """Labelled predictions needed before an alarm can fire."""
        return self._min_outcomes

    @property
    def check_every(self) -> int:
        """The fewest labels between two calibration checks of one group."""
        return self._check_every

    @property
    def max_slices(self) -> int:
        """The most slice keys kept apart; others are pooled."""
        return self._max_slices

    @property
    def on_retrain(self) -> Callable[[Event], object] | None:
        """Called with the alarm event when bias or calibration leaves its bounds."""
        return self._on_retrain

    @property
    def thresholds(self) -> tuple[DynamicThreshold[Any], ...]:
        """Dynamic thresholds paused when bias leaves its bounds."""
        return self._thresholds

    @property
    def log(self) -> DecisionLog | None:
        """The decision log written with every recorded decision."""
        return self._log

    # -- recording -------------------------------------------------------

    def record(
        self,
        prediction: Prediction[Any],
        decision: Decision[Any] | bool | np.ndarray[Any, Any] | None = None,
        inputs: object = None,
    ) -> None:
        """Keep *prediction* (each row of a batch) until its label arrives.

        *decision* is a :class:`~guardrail.Decision` or the ``act`` flags, for
        precision among positive decisions; *inputs* is the row (or the rows
        of a batch) the slice key is computed from.
        """
        if isinstance(decision, Decision):
            act: object = decision.act
        else:
            act = decision
        self._model = prediction.model
        value = prediction.value
        if type(value) is Probability and type(value.value) is float:
            # One row: no lists.
            key = self._slice_keys(inputs, None, 1)[0] if self._slice is not None else None
            flag = None if act is None else bool(act)
            self._keep_one(prediction.id, value.value, flag, key)
            return
        probabilities = _probabilities(prediction)
        size = None if type(prediction.value.value) is float else len(probabilities)
        self._keep(row_ids(prediction), probabilities, _flags(act, len(probabilities)),
                   self._slice_keys(inputs, size, len(probabilities)))  # fmt: skip

    def _keep_one(self, prediction_id: str, p: float, act: bool | None, key: str | None) -> None:
        now = self._clock()
        with self._lock:
            pending = self._pending
            pending[prediction_id] = (p, act, key, now)
            # Recorded again: it is now the newest, or _expire would stop behind it.
            pending.move_to_end(prediction_id)
            events = None
            if len(pending) > self._capacity:
                pending.popitem(last=False)
                events = self._lost("evicted", 1)
            if self._oldest() < now - self._ttl:
                events = (events or []) + self._expire(now)
        if events:
            for event in events:
                emit(event)

    def _slice_keys(self, inputs: object, size: int | None, n: int) -> list[str | None]:
        key = self._slice
        if key is None:
            return [None] * n
        rows = rows_of(inputs, n)
        if rows is None:
            with self._lock:
                self.slice_errors += n
            return [None] * n
        out: list[str | None] = []
        failed = 0
        for row in rows:
            try:
                out.append(redact(key(row)))
            except Exception:  # noqa: BLE001 - a user's key function failing is counted
                failed += 1
                out.append(None)
        if failed:
            with self._lock:
                self.slice_errors += failed
        return out

    def _keep(
        self,
        ids: list[str],
        probabilities: list[float],
        acts: list[bool | None],
        slices: list[str | None],
    ) -> None:
        events: list[Event] = []
        now = self._clock()
        with self._lock:
            pending = self._pending
            for i, p, a, s in zip(ids, probabilities, acts, slices, strict=True):
                pending[i] = (p, a, s, now)
                pending.move_to_end(i)
            over = len(pending) - self._capacity
            if over > 0:
                for _ in range(over):
                    pending.popitem(last=False)
                events += self._lost("evicted", over)
            events += self._expire(now)
        for event in events:
            emit(event)

    def _expire(self, now: float) -> list[Event]:
        """Drop what outlived the ttl (lock held); the oldest come first."""
        pending = self._pending
        limit = now - self._ttl
        dropped = 0
        while pending:
            first = next(iter(pending.values()))
            if first[3] >= limit:
                break
            pending.popitem(last=False)
            dropped += 1
        return self._lost("expired", dropped) if dropped else []

    def _lost(self, reason: str, n: int) -> list[Event]:
        """Count *n* lost under *reason*; an event when the count passes a power of two."""
        before = getattr(self, reason)
        after = before + n
        setattr(self, reason, after)
        if before == 0 or after.bit_length() > before.bit_length():
            return [OutcomesLost(source=self.source, reason=reason, count=after)]  # type: ignore[arg-type]
        return []

    def record_outcome(self, prediction_id: str, label: bool | int) -> bool:
        """Join *label* (0/1 or a bool) to the prediction with that id.

        Returns False, counts and reports when the id is unknown or expired.
        A label that is not 0, 1, True or False raises
        :class:`~guardrail.errors.LabelError`.
        """
        if type(label) is bool:
            y = 1 if label else 0
        else:
            try:
                y = _label(label)
            except LabelError:
                with self._lock:
                    self.invalid_labels += 1
                raise
        now = self._clock()
        with self._lock:
            pending = self._pending
            events = self._expire(now) if pending and self._oldest() < now - self._ttl else []
            entry = pending.pop(prediction_id, None)
            if entry is None:
                events += self._lost("unmatched", 1)
            else:
                events += self._join(entry[0], y, entry[1], entry[2])
        if events:
            for event in events:
                emit(event)
            self._react(events)
        return entry is not None

    def _oldest(self) -> float:
        """When the oldest waiting prediction was recorded (lock held, not empty)."""
        return next(iter(self._pending.values()))[3]

    def _join(self, p: float, y: int, act: bool | None, key: str | None) -> list[Event]:
        """Add one labelled prediction to the statistics and check bias (lock held)."""
        joined = self._joined
        if len(joined) >= self._capacity:
            old_p, old_y, _, old_key = joined.popleft()
            self._subtract(self._all, old_p, old_y)
            if old_key is not None:
                self._subtract(self._slices[old_key], old_p, old_y)
        if key is not None and key not in self._slices and len(self._slices) >= self._max_slices:
            key = OTHER_SLICE
        joined.append((p, y, act, key))
        sums = None
        if key is not None:
            sums = self._slices.get(key)
            if sums is None:
                sums = self._slices[key] = _Sums(len(self._slices), self._min_outcomes)
        i = self._ring_next
        self._ring_p[i] = p
        self._ring_y[i] = y
        self._ring_s[i] = -1 if sums is None else sums.id
        self._ring_next = 0 if i + 1 == self._capacity else i + 1
        overall = self._all
        events = self._add(overall, None, p, y)
        if sums is not None:
            events += self._add(sums, key, p, y)
        if self._ece_bound is not None:
            if overall.seen >= overall.next_check:
                events += self._check_calibration(overall, None)
            if sums is not None and sums.seen >= sums.next_check:
                events += self._check_calibration(sums, key)
        return events

    @staticmethod
    def _subtract(sums: _Sums, p: float, y: int) -> None:
        sums.n -= 1
        sums.predictions -= p
        sums.labels -= y
        sums.spread -= p * (1.0 - p)

    def _add(self, sums: _Sums, key: str | None, p: float, y: int) -> list[Event]:
        sums.seen += 1
        sums.n += 1
        sums.predictions += p
        sums.labels += y
        sums.spread += p * (1.0 - p)
        if sums.n < self._min_outcomes:
            return []
        bias = sums.bias()
        lo, hi = self._bias_bounds
        if lo <= bias <= hi:
            self._alarms.discard(key)
            return []
        if key in self._alarms:
            return []
        # Alarm only when the confidence interval of the bias (as a calibrated
        # model's labels would vary) lies wholly outside the bounds.
        margin = _BIAS_Z * math.sqrt(max(sums.spread, 0.0)) / sums.n
        if bias - margin <= hi and bias + margin >= lo:
            return []
        self._alarms.add(key)
        return [
            PredictionBiasOutOfRange(
                source=self._stamped(),
                slice=key,
                bias=bias,
                lower=lo,
                upper=hi,
                outcomes=sums.n,
            )
        ]

    def _check_calibration(self, sums: _Sums, key: str | None) -> list[Event]:
        """Check one group's calibration and schedule its next check (lock held)."""
        bound = self._ece_bound
        if bound is None or sums.n < self._min_outcomes:
            return []
        sums.next_check = sums.seen + max(self._check_every, sums.n // 4)
        found = self._calibration(sums.id)
        if found.estimate <= bound:
            self._ece_alarms.discard(key)
        if found.lower <= bound or key in self._ece_alarms:
            return []
        self._ece_alarms.add(key)
        return [
            CalibrationOutOfRange(
                source=self._stamped(),
                slice=key,
                ece=found.estimate,
                lower=found.lower,
                upper=found.upper,
                bound=bound,
                outcomes=found.outcomes,
            )
        ]

    def _calibration(self, slice_id: int) -> Calibration:
        """The calibration of all labelled predictions (-1) or one slice's (lock held)."""
        n = len(self._joined)
        # Before the ring wraps, its first n slots are the joined ones.
        p = np.frombuffer(self._ring_p, dtype=np.float64, count=n)
        y = np.frombuffer(self._ring_y, dtype=np.float64, count=n)
        if slice_id >= 0:
            mine = np.frombuffer(self._ring_s, dtype=np.int32, count=n) == slice_id
            p, y = p[mine], y[mine]
        return calibration(p, y, self._bins)

    def _calibration_by_slice(self) -> dict[str, Calibration]:
        """Every slice's calibration, from one sort of the ring by slice (lock held)."""
        n = len(self._joined)
        ids = np.frombuffer(self._ring_s, dtype=np.int32, count=n)
        order = np.argsort(ids, kind="stable")
        p = np.frombuffer(self._ring_p, dtype=np.float64, count=n)[order]
        y = np.frombuffer(self._ring_y, dtype=np.float64, count=n)[order]
        sorted_ids = ids[order]
        out = {}
        for key, sums in self._slices.items():
            if sums.n:
                lo, hi = np.searchsorted(sorted_ids, [sums.id, sums.id + 1])
                out[key] = calibration(p[lo:hi], y[lo:hi], self._bins)
        return out

    def _react(self, events: list[Event]) -> None:
        """Pause thresholds on bias alarms; call the retraining hook on any alarm."""
        for event in events:
            if isinstance(event, PredictionBiasOutOfRange):
                where = "overall" if event.slice is None else f"slice {event.slice!r}"
                for threshold in self._thresholds:
                    threshold.pause(
                        f"{self.name}: prediction bias {event.bias:+.3f} out of range ({where})"
                    )
            if isinstance(event, (PredictionBiasOutOfRange, CalibrationOutOfRange)):
                hook = self._on_retrain
                if hook is not None:
                    try:
                        hook(event)
                    except Exception as e:  # noqa: BLE001 - a user's hook failing is counted
                        with self._lock:
                            self.retrain_errors += 1
                            count = self.retrain_errors
                        emit(
                            RetrainHookFailed(
                                source=self.source, error=type(e).__name__, count=count
                            )
                        )

    def check(self) -> list[Event]:
        """Check calibration now, overall and by slice (bias is checked on every label).

        Returns the new alarms.
        """
        with self._lock:
            events = self._check_calibration(self._all, None)
            for key, sums in self._slices.items():
                events += self._check_calibration(sums, key)
            events += self._expire(self._clock())
        for event in events:
            emit(event)
        self._react(events)
        return events

    def to_dict(self) -> dict[str, Any]:
        """The settings, JSON-ready (functions by name)."""

        def named(fn: object) -> str | None:
            return None if fn is None else callable_name(fn)

        return {
            "name": self.name,
            "capacity": self._capacity,
            "ttl": self._ttl,
            "slice": named(self._slice),
            "bias_bounds": list(self._bias_bounds),
            "ece_bound": self._ece_bound,
            "bins": self._bins,
            "min_outcomes": self._min_outcomes,
            "check_every": self._check_every,
            "max_slices": self._max_slices,
            "on_retrain": named(self._on_retrain),
            "thresholds": [t.name for t in self._thresholds],
            "log": None if self._log is None else self._log.name,
        }

    # -- reading ---------------------------------------------------------

    @property
    def pending(self) -> int:
        """Predictions waiting for their label."""
        return len(self._pending)

    def report(self) -> OutcomeReport:
        """Bias overall and by slice, calibration error, precision, and the losses."""
        with self._lock:
            joined = list(self._joined)
            overall = self._all
            n = overall.n
            by_slice = {k: s.bias() for k, s in self._slices.items() if s.n}
            found = self._calibration(-1)
            found_by_slice = self._calibration_by_slice()
            pending = len(self._pending)
        acted = [y for _, y, a, _ in joined if a]
        return OutcomeReport(
            outcomes=n,
            pending=pending,
            mean_prediction=overall.predictions / n if n else math.nan,
            mean_label=overall.labels / n if n else math.nan,
            bias=overall.bias(),
            bias_by_slice=by_slice,
            ece=found.estimate,
            calibration=found,
            calibration_by_slice=found_by_slice,
            precision=sum(acted) / len(acted) if acted else math.nan,
            evicted=self.evicted,
            expired=self.expired,
            unmatched=self.unmatched,
        )

    # -- as a mechanism ----------------------------------------------------

    def check_config(self, config: GuardConfig) -> None:
        """Refuse a guard whose scores have no probability (``Score``)."""
        if config.returns not in (LogOdds, Probability):
            raise ScaleError(
                "an outcome monitor needs LogOdds or Probability predictions: a "
                f"{config.returns.__name__} has no probability without a calibration"
            )

    @property
    def parts(self) -> tuple[Any, ...]:
        """The mechanisms inside this one (its decision log): a guard attaches them too."""
        return () if self._log is None else (self._log,)

    def record_call(self, call: Call) -> None:
        """The guard's recorder: keep the call's prediction and decision; write the log."""
        prediction = call.prediction
        if prediction is None:
            return
        if self._log is not None:
            self._log.record_call(call)
        self.record(prediction, call.act, call.inputs)

    def _stamped(self) -> Source:
        """The source, with the model of the recorded predictions if no guard set one."""
        source = self.source
        if source.model is None and self._model is not None:
            return attrs.evolve(source, model=self._model)
        return source

    def __repr__(self) -> str:
        return (
            f"OutcomeMonitor(name={self.name!r}, capacity={self._capacity}, pending={self.pending})"
        )
