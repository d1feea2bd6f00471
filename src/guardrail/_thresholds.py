"""A threshold that re-adjusts online to hold a target rate of positive decisions.

The tracker is Robbins-Monro stochastic approximation of the ``1 - r``
quantile of the score stream, kept on the log-odds scale; decisions compare
with it directly::

    t <- t + step * (1[x >= t] - r)

A score above the threshold raises it by ``step * (1 - r)``, one below lowers
it by ``step * r``; the expected move is zero exactly when a fraction ``r`` of
scores is above ``t``. The state is one number and each score moves it by at
most ``step``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Literal, TypeVar, cast, overload

import numpy as np

from ._call import Source
from ._errors import ConfigError, FormatError, OutOfScaleError, ScaleError
from ._events import Event, PauseChanged
from ._forks import fork_safe_lock, in_child
from ._hooks import emit
from ._mechanism_events import ThresholdChanged, ThresholdClampHit
from ._model import ModelRef, canonical_json, fingerprint_bytes
from ._prediction import Decision, Prediction, Threshold
from ._reading import brief, loads, reading
from ._scales import LogOdds, Probability, ScaleValue, Score

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ._call import Call

__all__ = ["DynamicThreshold", "TrackerSettings", "tracker_settings"]

S = TypeVar("S", bound=ScaleValue[Any])

FORMAT: Final = "guardrail.dynamic_threshold"
FORMAT_VERSION: Final = 3
#: Older snapshot versions still read: version 2 has no ``tracked`` key.
_READS: Final = (2, 3)
_DEFAULT_STEP: Final = 0.1
_LOGIT_LIMIT: Final = 700.0
_Bound = Literal["lower", "upper"]


# Decisions carry a Threshold each: built without attrs' checks (1.4 µs).
_decided_at = Threshold._dynamic


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {brief(value)}")
    try:
        return float(value)
    except OverflowError:
        raise ConfigError(f"{name} must be a finite number, got {brief(value)}") from None


class TrackerSettings:
    """A rate tracker's checked settings, on the tracking scale (log-odds or score).

    What :class:`DynamicThreshold` and ``SharedThreshold`` both validate; build
    it with :func:`tracker_settings`. ``lo`` and ``hi`` are the clamps on the
    tracking scale (infinite when absent, except for probabilities, whose
    odds keep within ``exp(±700)``).
    """

    __slots__ = ("band", "hi", "lo", "logistic", "rate", "scale", "start", "step")

    def __init__(
        self,
        *,
        scale: type[ScaleValue[Any]],
        logistic: bool,
        rate: float,
        step: float,
        band: float,
        start: float,
        lo: float,
        hi: float,
    ) -> None:
        self.scale = scale
        self.logistic = logistic
        self.rate = rate
        self.step = step
        self.band = band
        self.start = start
        self.lo = lo
        self.hi = hi


def _tracking(native: float, logistic: bool) -> float:
    """A value on the prediction's scale -> the tracking scale."""
    if not logistic:
        return native
    if native <= 0.0:
        return -math.inf
    if native >= 1.0:
        return math.inf
    return math.log(native / (1.0 - native))


def tracker_settings(
    *,
    target_rate: float,
    initial: ScaleValue[Any],
    step: float | None,
    lower: ScaleValue[Any] | None,
    upper: ScaleValue[Any] | None,
    dead_band: float | None,
    warmup: int,
    model: ModelRef | None,
    name: str,
) -> TrackerSettings:
    """Check a rate tracker's settings (:class:`~guardrail.errors.ConfigError`,
    :class:`~guardrail.errors.ScaleError`) and put them on the tracking scale."""
    rate = _number("target_rate", target_rate)
    if not 0.0 < rate < 1.0:
        raise ConfigError(f"target_rate must lie in (0, 1), got {target_rate!r}")
    scale = type(initial)
    if scale not in (Probability, LogOdds, Score):
        raise ScaleError(
            f"initial must be a Probability, LogOdds or Score, got {type(initial).__name__}"
        )
    if initial.is_batch:
        raise ConfigError("initial must be one value, not a batch")
    if step is None:
        if scale is Score:
            raise ConfigError("a Score threshold needs an explicit step, in score units")
        step = _DEFAULT_STEP
    eta = _number("step", step)
    if not 0.0 < eta < math.inf:
        raise ConfigError(f"step must be positive and finite, got {brief(step)}")
    if scale is not Score and eta > _LOGIT_LIMIT:
        # A step is taken as exp(step) on the odds: beyond this it overflows.
        raise ConfigError(
            f"step must be at most {_LOGIT_LIMIT:g} on the log-odds scale, got {brief(step)}"
        )
    band = 2.0 * eta if dead_band is None else _number("dead_band", dead_band)
    if not 0.0 <= band < math.inf:
        raise ConfigError(f"dead_band must be >= 0 and finite, got {dead_band!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ConfigError(f"warmup must be an int >= 0, got {warmup!r}")
    if model is not None and not isinstance(model, ModelRef):
        raise ConfigError("model must be a ModelRef or None")
    if not isinstance(name, str) or not name:
        raise ConfigError("name must be a non-empty string")
    for bound_name, bound in (("lower", lower), ("upper", upper)):
        if bound is not None and (type(bound) is not scale or bound.is_batch):
            raise ScaleError(
                f"{bound_name} must be one {scale.__name__} like initial, "
                f"got {type(bound).__name__}"
            )

    logistic = scale is Probability
    start = _tracking(cast(float, initial.value), logistic)
    if not math.isfinite(start):
        raise ConfigError(f"initial must be strictly inside its scale, got {initial!r}")
    lo = -math.inf if lower is None else _tracking(cast(float, lower.value), logistic)
    hi = math.inf if upper is None else _tracking(cast(float, upper.value), logistic)
    if not lo <= start <= hi:
        raise ConfigError(f"the clamps [{lower!r}, {upper!r}] exclude initial {initial!r}")
    if logistic:
        # The odds must stay a normal float: implicit clamps far out.
        if abs(start) > _LOGIT_LIMIT:
            raise ConfigError(f"initial {initial!r} is too close to 0 or 1 to track")
        lo, hi = max(lo, -_LOGIT_LIMIT), min(hi, _LOGIT_LIMIT)
    return TrackerSettings(
        scale=scale, logistic=logistic, rate=rate, step=eta, band=band, start=start, lo=lo, hi=hi
    )


class DynamicThreshold(Generic[S]):
    """A threshold that holds a target rate of positive decisions as scores shift.

    Args:
        target_rate: The fraction of scores that should pass, in ``(0, 1)``.
        initial: The starting threshold, a scalar ``Probability``, ``LogOdds``
            or ``Score``; its type is the scale decisions are made on.
        step: How far one score may move the tracker (``η``). Probability and
            log-odds thresholds are tracked on the log-odds scale, so the step
            is in log-odds (default 0.1). A ``Score`` has no log-odds: it is
            tracked on its own scale, and *step* is required, in score units.
        lower: The lowest value the threshold may take (same type as
            *initial*); reaching it emits :class:`~guardrail.instrumentation.ThresholdClampHit`.
        upper: The highest value, likewise.
        dead_band: The tracker must move this far (on the tracking scale)
            from the saved value before a new value is saved under a new
            version. Default: twice the step.
        warmup: The number of scores seen before the threshold starts to move.
        model: The model the threshold is set for; ``None`` accepts any.
        name: Identifies the threshold in events.

    Decisions compare with the tracker (:attr:`tracker`), which moves with
    every score; the dead band only spaces out the *saved* values
    (:meth:`current`, with a version and a
    :class:`~guardrail.instrumentation.ThresholdChanged` event each). A
    :class:`~guardrail.Decision` carries the tracker's value it was compared
    with and the version of the last saved value. Each decision's comparison
    is also its step, so over ``N`` decisions that moved the tracker
    (no clamp reached) ``positives - target_rate * N = (t_N - t_0) / step``
    exactly: the rate error shrinks as ``1 / N`` (docs/thresholds.md).

    A batch (:meth:`update` with an array value) is one step: every score in
    it is compared with the threshold at the start of the batch, and the
    increments are applied in order with the clamps enforced after each one,
    in one vectorized pass. It differs from feeding the scores one by one only
    through scores whose comparison would have changed as the threshold moved
    within the batch: ``|batch - sequential| <= step * m`` where ``m`` counts
    those scores.

    >>> import guardrail as gr
    >>> t = gr.DynamicThreshold(target_rate=0.01, initial=gr.Probability(0.9))
    >>> t.current().value, t.current().version
    (0.9, 1)
    >>> saved = t.snapshot_json()                  # store it; after a restart:
    >>> gr.DynamicThreshold.restore(saved).current() == t.current()
    True
    """

    __slots__ = (
        "__weakref__", "_acquire", "_at_clamp", "_band_hi", "_band_lo", "_down", "_down_v",
        "_exact", "_exact_v", "_hi", "_hi_v", "_hold", "_initial", "_lo", "_lo_v", "_lock",
        "_logistic", "_lower", "_pause_reason", "_paused", "_published", "_published_t",
        "_quiet_hi", "_quiet_lo", "_rearm", "_release", "_scale", "_seen", "_up", "_up_v",
        "_upper", "_used", "_used_v", "_v",
        "clamp_hits", "dead_band", "model", "name", "source", "step", "target_rate", "warmup",
    )  # fmt: skip

    name: str
    _used: Threshold[S]  # what decisions at _used_v carry
    _used_v: float

    kind: ClassVar[str] = "threshold"

    @overload
    def __init__(
        self: DynamicThreshold[Probability[Any]],
        *,
        target_rate: float,
        initial: Probability[float],
        step: float | None = None,
        lower: Probability[float] | None = None,
        upper: Probability[float] | None = None,
        dead_band: float | None = None,
        warmup: int = 0,
        model: ModelRef | None = None,
        name: str = "threshold",
    ) -> None: ...

    @overload
    def __init__(
        self: DynamicThreshold[LogOdds[Any]],
        *,
        target_rate: float,
        initial: LogOdds[float],
        step: float | None = None,
        lower: LogOdds[float] | None = None,
        upper: LogOdds[float] | None = None,
        dead_band: float | None = None,
        warmup: int = 0,
        model: ModelRef | None = None,
        name: str = "threshold",
    ) -> None: ...

    @overload
    def __init__(
        self: DynamicThreshold[Score[Any]],
        *,
        target_rate: float,
        initial: Score[float],
        step: float | None = None,
        lower: Score[float] | None = None,
        upper: Score[float] | None = None,
        dead_band: float | None = None,
        warmup: int = 0,
        model: ModelRef | None = None,
        name: str = "threshold",
    ) -> None: ...

    def __init__(
        self,
        *,
        target_rate: float,
        initial: ScaleValue[Any],
        step: float | None = None,
        lower: ScaleValue[Any] | None = None,
        upper: ScaleValue[Any] | None = None,
        dead_band: float | None = None,
        warmup: int = 0,
        model: ModelRef | None = None,
        name: str = "threshold",
    ) -> None:
        checked = tracker_settings(
            target_rate=target_rate, initial=initial, step=step, lower=lower, upper=upper,
            dead_band=dead_band, warmup=warmup, model=model, name=name,
        )  # fmt: skip
        rate, eta, band = checked.rate, checked.step, checked.band
        start, lo, hi = checked.start, checked.lo, checked.hi
        self._scale: type[S] = cast("type[S]", checked.scale)
        self._logistic = checked.logistic

        self.name = name
        #: Who emits this threshold's events (set again when a guard takes it).
        self.source = Source("threshold", name, None, model)
        self.model = model
        self.target_rate = rate
        self.step = eta
        self.dead_band = band
        self.warmup = warmup
        self._initial = cast(float, initial.value)
        self._lower = None if lower is None else cast(float, lower.value)
        self._upper = None if upper is None else cast(float, upper.value)
        self._lo = lo
        self._hi = hi
        self._up = eta * (1.0 - rate)
        self._down = -eta * rate
        # Hysteresis for the clamp alarm: the tracker must leave the clamp by
        # this much before hitting it again raises another event.
        self._rearm = max(band, eta)
        # The tracked variable v is the threshold itself on a log-odds or score
        # scale, but the odds exp(t) for a probability: then a score p is
        # above when p * (1 + v) >= v and a step multiplies v by exp(±step),
        # so the hot path needs no exp() or log().
        if self._logistic:
            self._up_v, self._down_v = math.exp(self._up), math.exp(self._down)
            self._lo_v, self._hi_v = math.exp(lo), math.exp(hi)
        else:
            self._up_v, self._down_v = self._up, self._down
            self._lo_v, self._hi_v = lo, hi
        # The configured values, exactly: converting them to the tracking scale
        # and back would publish 0.8999999999999999 for a threshold set at 0.9.
        self._exact = {start: self._initial}
        # The same, keyed by the tracked variable (the odds for a probability).
        self._exact_v = {math.exp(start) if self._logistic else start: self._initial}
        for clamp, internal, v in ((self._lower, lo, self._lo_v), (self._upper, hi, self._hi_v)):
            if clamp is not None:
                self._exact[internal] = clamp
                # A clamped tracker reads back as log(exp(clamp)).
                self._exact[math.log(v) if self._logistic else v] = clamp
                self._exact_v[v] = clamp
        self._lock = fork_safe_lock(self)
        self._bind_lock()
        # The child's new lock (set by fork_safe_lock's callback, which runs first).
        in_child(self, DynamicThreshold._bind_lock)
        self._restore_state(
            tracked=math.exp(start) if self._logistic else start, published=start,
            version=1, seen=0, paused=False, pause_reason="", clamp_hits=0, at_clamp=None,
        )  # fmt: skip

    # -- conversions -----------------------------------------------------

    def _native(self, internal: float) -> float:
        return _sigmoid(internal) if self._logistic else internal

    def _published_value(self, internal: float) -> float:
        """Like :meth:`_native`, but the initial value and the clamps come back exact."""
        exact = self._exact.get(internal)
        return self._native(internal) if exact is None else exact

    def _restore_state(
        self,
        *,
        tracked: float,
        published: float,
        version: int,
        seen: int,
        paused: bool,
        pause_reason: str,
        clamp_hits: int,
        at_clamp: _Bound | None,
    ) -> None:
        self._v = tracked
        self._at_clamp: _Bound | None = at_clamp
        self._set_published(published, version)
        self._seen = seen
        self._paused = paused
        # Scores up to this count do not move the threshold (warm-up; all while paused).
        self._hold: float = math.inf if paused else self.warmup
        self._pause_reason = pause_reason
        self.clamp_hits = clamp_hits

    def _set_published(self, t: float, version: int) -> None:
        self._published = Threshold(
            self._published_value(t),
            scale=self._scale,
            model=self.model,
            origin="dynamic",
            version=version,
        )
        self._published_t = t
        # Decisions carry the saved version: the next one builds its Threshold anew.
        self._used_v = math.nan
        lo, hi = t - self.dead_band, t + self.dead_band
        if self._logistic:
            limit = _LOGIT_LIMIT + 1.0
            lo, hi = math.exp(max(lo, -limit)), math.exp(min(hi, limit))
        # The tracked variable must leave [band_lo, band_hi] for a new save.
        self._band_lo, self._band_hi = lo, hi
        self._requiet()

    @property
    def _t(self) -> float:
        """The tracker on the tracking scale (log-odds or score)."""
        return math.log(self._v) if self._logistic else self._v

    def _value_of(self, v: float) -> float:
        """The tracked variable *v* on the prediction's scale; configured values exact."""
        exact = self._exact_v.get(v)
        if exact is not None:
            return exact
        return v / (1.0 + v) if self._logistic else v

    def _use(self, v: float) -> Threshold[S]:
        """The Threshold decisions at tracked value *v* carry (lock held; cached)."""
        if v == self._used_v:
            return self._used
        value = self._exact_v.get(v)
        if value is None:
            value = v / (1.0 + v) if self._logistic else v
        used = self._used = _decided_at(value, self._scale, self.model, self._published.version)
        self._used_v = v
        return used

    # -- reading ---------------------------------------------------------

    def current(self) -> Threshold[S]:
        """The saved threshold: its value on the prediction's scale and its version.

        Decisions do not compare with it but with :attr:`tracker`, which lies
        within ``dead_band`` of it (on the tracking scale).
        """
        return self._published

    @property
    def tracker(self) -> S:
        """The value decisions compare with now, clamped (moves with every score)."""
        return self._scale(self._value_of(self._v))

    @property
    def paused(self) -> bool:
        """True while updates are ignored (see :meth:`pause`)."""
        return self._paused

    @property
    def seen(self) -> int:
        """The number of scores seen, including those ignored while paused."""
        return self._seen

    @property
    def config(self) -> dict[str, Any]:
        """The configuration as a JSON-ready dict (what the fingerprint covers)."""
        return {
            "name": self.name,
            "scale": self._scale.scale,
            "target_rate": self.target_rate,
            "initial": self._initial,
            "step": self.step,
            "lower": self._lower,
            "upper": self._upper,
            "dead_band": self.dead_band,
            "warmup": self.warmup,
            "model": None if self.model is None else self.model.to_dict(),
        }

    @property
    def fingerprint(self) -> str:
        """The sha256 of the canonical JSON of :attr:`config`."""
        return fingerprint_bytes(canonical_json(self.config).encode())

    # -- pausing ---------------------------------------------------------

    def pause(self, reason: str = "paused by hand") -> None:
        """Stop the threshold from moving until :meth:`resume`; scores are still counted."""
        with self._lock:
            if self._paused:
                return
            self._paused = True
            self._hold = math.inf
            self._pause_reason = reason
        emit(PauseChanged(source=self.source, paused=True, reason=reason))

    def resume(self, reason: str = "resumed by hand") -> None:
        """Let the threshold move again, from where the tracker stood."""
        with self._lock:
            if not self._paused:
                return
            self._paused = False
            self._hold = self.warmup
            self._pause_reason = ""
        emit(PauseChanged(source=self.source, paused=False, reason=reason))

    # -- updating --------------------------------------------------------

    def update(self, value: S) -> None:
        """Move the tracker with one score, or with a batch in one step.

        Paused or warming up, the score is counted and the threshold stays.
        """
        if type(value) is not self._scale:
            raise ScaleError(
                f"cannot update a {self._scale.__name__} threshold with a {type(value).__name__}"
            )
        raw = value.value
        if type(raw) is not float:
            self._update_batch(raw)
            return
        # The hot path: a few float operations under the lock.
        events: list[Event] | None = None
        self._acquire()
        try:
            seen = self._seen = self._seen + 1
            if seen > self._hold:
                v = self._v
                if self._logistic:
                    v *= self._up_v if raw * (1.0 + v) >= v else self._down_v
                else:
                    v += self._up_v if raw >= v else self._down_v
                if self._quiet_lo <= v <= self._quiet_hi:
                    self._v = v
                else:
                    events = self._move(v)
        finally:
            self._release()
        if events:
            for event in events:
                emit(event)

    def _move(self, v: float) -> list[Event] | None:
        """Set the tracked variable to *v*: clamps, alarms, saving (lock held)."""
        events = None
        if v > self._hi_v:
            v = self._hi_v
            events = self._hit("upper")
        elif v < self._lo_v:
            v = self._lo_v
            events = self._hit("lower")
        self._v = v
        t = self._t
        if self._at_clamp is not None:
            self._maybe_rearm(t)
        if not self._band_lo <= v <= self._band_hi:
            events = self._publish(t, events)
        return events

    def _requiet(self) -> None:
        """The range in which a move needs no clamp, alarm or save (lock held)."""
        if self._at_clamp is not None:
            self._quiet_lo, self._quiet_hi = math.inf, -math.inf
        else:
            self._quiet_lo = max(self._band_lo, self._lo_v)
            self._quiet_hi = min(self._band_hi, self._hi_v)

    def _update_batch(self, raw: NDArray[np.float64]) -> None:
        with self._lock:
            events = self._step_batch(raw >= self._use(self._v).value)
        if events:
            for event in events:
                emit(event)

    def _step_batch(self, flags: NDArray[np.bool_]) -> list[Event] | None:
        """Move the tracker by a batch's comparisons with its value (lock held)."""
        events: list[Event] | None = None
        before = self._seen
        self._seen += flags.size
        if self._paused:
            return None
        skip = self.warmup - before
        if skip >= flags.size:
            return None
        above = flags[skip:] if skip > 0 else flags
        t0 = self._t
        ups = int(np.count_nonzero(above))
        downs = above.size - ups
        # Every path through these increments stays within
        # [t0 + downs * down, t0 + ups * up]: inside the clamps, no
        # per-step clamping can occur and the sum is exact.
        if t0 + ups * self._up <= self._hi and t0 + downs * self._down >= self._lo:
            t = t0 + (ups * self._up + downs * self._down)
        else:
            steps = np.where(above, self._up, self._down)
            t, hit = _clamped_walk(t0, steps, self._lo, self._hi)
            if hit is not None:
                events = self._hit(hit)
        if self._at_clamp is not None:
            self._maybe_rearm(t)
        self._v = math.exp(t) if self._logistic else t
        if abs(t - self._published_t) > self.dead_band:
            events = self._publish(t, events)
        return events

    def _hit(self, bound: _Bound) -> list[Event] | None:
        """Count a fresh clamp hit and make its event (lock held)."""
        if self._at_clamp == bound:
            return None
        self._at_clamp = bound
        self._requiet()
        self.clamp_hits += 1
        native = self._published_value(self._hi if bound == "upper" else self._lo)
        return [
            ThresholdClampHit(source=self.source, bound=bound, value=native, hits=self.clamp_hits)
        ]

    def _maybe_rearm(self, t: float) -> None:
        clamp = self._hi if self._at_clamp == "upper" else self._lo
        if abs(t - clamp) > self._rearm:
            self._at_clamp = None
            self._requiet()

    def _publish(self, t: float, events: list[Event] | None) -> list[Event]:
        """Save *t* as the threshold under the next version (lock held)."""
        self._set_published(t, self._published.version + 1)
        out = events if events is not None else []
        threshold = self._published
        out.append(
            ThresholdChanged(
                source=self.source,
                scale=self._scale.scale,
                value=threshold.value,
                version=threshold.version,
            )
        )
        return out

    # -- deciding ----------------------------------------------------------

    def decide(self, prediction: Prediction[S]) -> Decision[S]:
        """Compare *prediction* with the tracker, then update with its score.

        The :class:`~guardrail.Decision` carries the value compared with and
        the version of the last saved value (:meth:`current`).
        """
        if not isinstance(prediction, Prediction):
            raise ScaleError(f"decide() takes a Prediction, got {type(prediction).__name__}")
        threshold, above = self._decide(prediction)
        return Decision(prediction=prediction, threshold=threshold, above=above, act=above)

    def _bind_lock(self) -> None:
        """Bind the hot path's lock methods (again in a forked child: its lock is new)."""
        self._acquire = self._lock.acquire
        self._release = self._lock.release

    def decide_call(self, call: Call) -> None:
        """The guard's decider: decide on ``call.prediction`` with the tracker, then update."""
        prediction = call.prediction
        if prediction is None:
            return
        threshold, above = self._decide(prediction)
        call.decide(threshold, above)

    def _decide(self, prediction: Prediction[S]) -> tuple[Threshold[S], bool | NDArray[np.bool_]]:
        """Compare with the tracker's value and move the tracker, in one locked step."""
        model = self.model
        if model is not None and prediction.model is not model:
            self._published.check_model(prediction.model)
        value = prediction.value
        if type(value) is not self._scale:
            raise ScaleError(
                f"cannot compare a {type(value).__name__} with a "
                f"{self._scale.__name__} threshold; convert it explicitly first"
            )
        raw = value.value
        events: list[Event] | None = None
        if type(raw) is not float:
            with self._lock:
                threshold = self._use(self._v)
                flags: NDArray[np.bool_] = raw >= threshold.value
                flags.flags.writeable = False
                events = self._step_batch(flags)
            if events:
                for event in events:
                    emit(event)
            return threshold, flags
        # The hot path: the comparison is the step's direction, so the rate
        # of positive decisions is the rate the tracker holds.
        self._acquire()
        try:
            v = self._v
            threshold = self._used if v == self._used_v else self._use(v)
            above = raw >= threshold.value
            seen = self._seen = self._seen + 1
            if seen > self._hold:
                if self._logistic:
                    v *= self._up_v if above else self._down_v
                else:
                    v += self._up_v if above else self._down_v
                if self._quiet_lo <= v <= self._quiet_hi:
                    self._v = v
                else:
                    events = self._move(v)
        finally:
            self._release()
        if events:
            for event in events:
                emit(event)
        return threshold, above

    # -- snapshots -------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The settings (:attr:`config`), JSON-ready; no state. See :meth:`snapshot`."""
        return self.config

    def snapshot(self) -> dict[str, Any]:
        """The configuration and state, JSON-ready (versioned format)."""
        with self._lock:
            state = {
                "tracker": self._t,
                "tracked": self._v,
                "saved": self._published_t,
                "version": self._published.version,
                "seen": self._seen,
                "paused": self._paused,
                "pause_reason": self._pause_reason,
                "clamp_hits": self.clamp_hits,
                "at_clamp": self._at_clamp,
            }
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "config": self.config,
            "state": state,
        }

    def snapshot_json(self) -> str:
        """:meth:`snapshot` as canonical JSON, for a file or a key-value store."""
        return canonical_json(self.snapshot())

    @classmethod
    def restore(cls, data: Mapping[str, Any] | str | bytes) -> DynamicThreshold[Any]:
        """Rebuild a threshold from a :meth:`snapshot` (a dict or its JSON text).

        It resumes where it was: value, version, tracker, scores seen, paused.
        Invalid JSON, unknown, missing or mistyped keys, another format or
        version, and a state outside the clamps are
        :class:`~guardrail.errors.FormatError`.
        """
        document: object = data
        if isinstance(data, (str, bytes, bytearray)):
            document = loads(data, "a snapshot")
        with reading("a snapshot"):
            return cls._restore(document)

    @classmethod
    def _restore(cls, data: Any) -> DynamicThreshold[Any]:
        _keys(data, {"format", "version", "config", "state"}, "a snapshot")
        if data["format"] != FORMAT:
            raise FormatError(f"not a dynamic threshold snapshot: format {brief(data['format'])}")
        if type(data["version"]) is not int or data["version"] not in _READS:
            raise FormatError(
                f"unsupported snapshot version {brief(data['version'])}; "
                f"this guardrail reads versions {', '.join(map(str, _READS))}"
            )
        config = data["config"]
        _keys(config, set(_CONFIG_KEYS), "the snapshot's config")
        state = data["state"]
        keys = set(_STATE_KEYS) if data["version"] >= 3 else set(_STATE_KEYS) - {"tracked"}
        _keys(state, keys, "the snapshot's state")
        scales: dict[str, type[ScaleValue[Any]]] = {
            "probability": Probability,
            "log-odds": LogOdds,
            "score": Score,
        }
        scale = scales.get(config["scale"]) if isinstance(config["scale"], str) else None
        if scale is None:
            raise FormatError(f"unknown scale {brief(config['scale'])}")

        def value(key: str) -> Any:
            raw = config[key]
            return None if raw is None else scale(_finite(raw, key))

        try:
            threshold = cls(
                target_rate=_finite(config["target_rate"], "target_rate"),
                initial=value("initial"),
                step=_finite(config["step"], "step"),
                lower=value("lower"),
                upper=value("upper"),
                dead_band=_finite(config["dead_band"], "dead_band"),
                warmup=_int(config["warmup"], "warmup"),
                model=None if config["model"] is None else ModelRef.from_dict(config["model"]),
                name=config["name"],
            )
        except (ConfigError, ScaleError, OutOfScaleError) as e:
            raise FormatError(f"bad snapshot config: {e}") from e
        tracker = _finite(state["tracker"], "tracker")
        saved = _finite(state["saved"], "saved")
        if not threshold._lo <= saved <= threshold._hi:
            raise FormatError(f"snapshot saved {saved!r} lies outside the clamps")
        logistic = threshold._logistic
        if "tracked" in state:
            # The tracked variable itself (the odds for a probability), exactly
            # what decisions compare with; the tracker must be its logarithm.
            tracked = _finite(state["tracked"], "tracked")
            if not threshold._lo_v <= tracked <= threshold._hi_v:
                raise FormatError(f"snapshot tracked {tracked!r} lies outside the clamps")
            if tracker != (math.log(tracked) if logistic else tracked):
                raise FormatError(
                    f"snapshot tracker {tracker!r} does not match tracked {tracked!r}"
                )
        else:
            # Version 2 kept only the tracker on the tracking scale.
            if not threshold._lo <= tracker <= threshold._hi:
                raise FormatError(f"snapshot tracker {tracker!r} lies outside the clamps")
            tracked = math.exp(tracker) if logistic else tracker
        version = _int(state["version"], "version")
        if version < 1:
            raise FormatError("snapshot version must be >= 1")
        if not isinstance(state["paused"], bool) or not isinstance(state["pause_reason"], str):
            raise FormatError("snapshot paused must be a bool and pause_reason a string")
        if state["at_clamp"] not in (None, "lower", "upper"):
            raise FormatError("snapshot at_clamp must be null, 'lower' or 'upper'")
        threshold._restore_state(
            tracked=tracked,
            published=saved,
            version=version,
            seen=_int(state["seen"], "seen"),
            paused=state["paused"],
            pause_reason=state["pause_reason"],
            clamp_hits=_int(state["clamp_hits"], "clamp_hits"),
            at_clamp=state["at_clamp"],
        )
        return threshold

    def __repr__(self) -> str:
        t = self._published
        return (
            f"DynamicThreshold(name={self.name!r}, target_rate={self.target_rate}, "
            f"value={t.value!r}, version={t.version}, paused={self._paused})"
        )


_CONFIG_KEYS: Final = (
    "name", "scale", "target_rate", "initial", "step", "lower", "upper",
    "dead_band", "warmup", "model",
)  # fmt: skip
_STATE_KEYS: Final = (
    "tracker", "tracked", "saved", "version", "seen", "paused", "pause_reason", "clamp_hits",
    "at_clamp",
)  # fmt: skip


def _keys(data: object, keys: set[str], what: str) -> None:
    if not isinstance(data, Mapping):
        raise FormatError(f"{what} must be a mapping")
    if set(data) != keys:
        missing, unknown = keys - set(data), set(data) - keys
        raise FormatError(
            f"{what}: missing {sorted(missing)}, unknown {brief(sorted(map(str, unknown)))}"
        )


def _finite(x: object, key: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise FormatError(f"snapshot {key} must be a finite number, got {brief(x)}")
    try:
        return float(x)
    except OverflowError:
        raise FormatError(f"snapshot {key} must be a finite number, got {brief(x)}") from None


def _int(x: object, key: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < 0:
        raise FormatError(f"snapshot {key} must be an int >= 0, got {brief(x)}")
    return x


def _clamped_walk(
    start: float, steps: NDArray[np.float64], lo: float, hi: float
) -> tuple[float, _Bound | None]:
    """``x <- clamp(x + step)`` over *steps*, vectorized.

    Between two clamp hits on opposite sides only one clamp acts, and a walk
    with one clamp has a closed form (the reflected walk): with partial sums
    ``S_k``, ``x_k = start + S_k - max(0, max_{j<=k}(start + S_j - hi))``.
    The loop runs once per switch from one clamp to the other.

    Returns the end point and the clamp touched last (``None`` if neither).
    """
    last: _Bound | None = None
    regulate: _Bound = "upper"
    x = start
    while steps.size:
        path = x + np.cumsum(steps)
        if regulate == "upper":
            excess = np.maximum.accumulate(np.maximum(path - hi, 0.0))
            walk = path - excess
            crossed = walk < lo
        else:
            excess = np.maximum.accumulate(np.maximum(lo - path, 0.0))
            walk = path + excess
            crossed = walk > hi
        if not crossed.any():
            if excess[-1] > 0.0:
                last = regulate
            return float(walk[-1]), last
        i = int(np.argmax(crossed))
        last = "lower" if regulate == "upper" else "upper"
        x = lo if last == "lower" else hi
        regulate = last
        steps = steps[i + 1 :]
    return x, last
