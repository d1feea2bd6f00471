"""A dynamic threshold shared by a fleet: one tracker in Redis, a cache per replica.

The tracker is the one :class:`~guardrail.DynamicThreshold` runs (Robbins-Monro
on the log-odds scale, or on a ``Score``'s own scale), kept in one Redis hash.
Each replica compares its scores with the tracker's value it holds and counts
how many were above and below; at most every ``max_staleness`` seconds it
sends those two counts to Redis in one Lua script, which moves the tracker by
``ups * step * (1 - r) - downs * step * r`` atomically, clamps it, saves a new
version when it left the dead band, and answers with the tracker's value, the
saved value and its version. That answer is the replica's cache, so a
decision never uses a value read more than ``max_staleness`` seconds (plus
one round trip) earlier, and every replica holds the same version within that
bound. The dead band only spaces the versions (and their events) out; the
decisions follow the tracker.

One batch of counts is one step in the sense of ``DynamicThreshold``'s batch
update: every score in it was compared with the same threshold.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Literal, TypeVar, cast

import numpy as np

from ._call import Source
from ._errors import ConfigError, ScaleError
from ._events import PauseChanged
from ._forks import fork_safe_lock
from ._hooks import emit
from ._mechanism_events import ThresholdChanged, ThresholdClampHit
from ._model import ModelRef
from ._prediction import Decision, Prediction, Threshold
from ._scales import ScaleValue
from ._thresholds import tracker_settings

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ._call import Call

__all__ = ["SharedThreshold"]

S = TypeVar("S", bound=ScaleValue[Any])

_LOGIT_LIMIT: Final = 700.0
_NO_CLAMP: Final = 1e300

# KEYS[1]: the tracker's hash.  ARGV: ups, downs, up step, down step (negative),
# lower clamp, upper clamp, dead band, re-arm distance, warm-up, initial value.
# The hash is created on first use; the server's clock stamps every change.
# Numbers travel as %.17g text, which reads back as the same double.
_UPDATE: Final = """
local k = KEYS[1]
local ups, downs = tonumber(ARGV[1]), tonumber(ARGV[2])
local up, down = tonumber(ARGV[3]), tonumber(ARGV[4])
local lo, hi = tonumber(ARGV[5]), tonumber(ARGV[6])
local band, rearm, warmup = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
if redis.call('EXISTS', k) == 0 then
  redis.call('HSET', k, 't', ARGV[10], 'published', ARGV[10], 'version', 1, 'seen', 0,
             'paused', 0, 'clamp', '', 'hits', 0, 'reason', '')
end
local s = redis.call('HMGET', k, 't', 'published', 'version', 'seen', 'paused', 'clamp', 'hits')
local t, pub, version = tonumber(s[1]), s[2], tonumber(s[3])
local seen, paused, clamp, hits = tonumber(s[4]), s[5], s[6], tonumber(s[7])
local n = ups + downs
local hit, changed = '', 0
if n > 0 then
  local held = warmup - seen
  seen = seen + n
  if paused == '0' and held < n then
    if held > 0 then
      local moving = (n - held) / n
      ups, downs = ups * moving, downs * moving
    end
    t = t + ups * up + downs * down
    if t > hi then
      t = hi
      if clamp ~= 'upper' then clamp = 'upper'; hits = hits + 1; hit = 'upper' end
    elseif t < lo then
      t = lo
      if clamp ~= 'lower' then clamp = 'lower'; hits = hits + 1; hit = 'lower' end
    elseif (clamp == 'upper' and hi - t > rearm) or (clamp == 'lower' and t - lo > rearm) then
      clamp = ''
    end
    if math.abs(t - tonumber(pub)) > band then
      pub = string.format('%.17g', t)
      version = version + 1
      changed = 1
    end
  end
  local now = redis.call('TIME')
  redis.call('HSET', k, 't', string.format('%.17g', t), 'published', pub, 'version', version,
             'seen', seen, 'clamp', clamp, 'hits', hits,
             'updated_at', now[1] .. '.' .. string.format('%06d', tonumber(now[2])))
end
return {pub, version, paused, hit, changed, hits, seen, string.format('%.17g', t)}
"""

# KEYS[1]: the tracker's hash.  ARGV: 1 to pause or 0 to resume, the reason,
# then the initial value (if the hash does not exist yet).
_PAUSE: Final = """
local k = KEYS[1]
if redis.call('EXISTS', k) == 0 then
  redis.call('HSET', k, 't', ARGV[3], 'published', ARGV[3], 'version', 1, 'seen', 0,
             'paused', 0, 'clamp', '', 'hits', 0, 'reason', '')
end
local was = redis.call('HGET', k, 'paused')
redis.call('HSET', k, 'paused', ARGV[1], 'reason', ARGV[2])
return was
"""


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    return float(value)


class SharedThreshold(Generic[S]):
    """A dynamic threshold whose tracker lives in Redis, shared by every replica.

    Args:
        target_rate: The fraction of scores that should pass, fleet-wide, in ``(0, 1)``.
        initial: The starting threshold (``Probability``, ``LogOdds`` or
            ``Score``); its type is the scale decisions are made on.
        store: The :class:`~guardrail.limits.RedisStore` to keep the tracker
            in: its client, its namespace and its *deadline* (each Redis call
            waits at most that long, as a limit's decisions do).
        step: How far one score moves the tracker (in log-odds for
            probabilities and log-odds; required, in score units, for a ``Score``).
        lower: The lowest value the threshold may take (same type as *initial*).
        upper: The highest value, likewise.
        dead_band: How far the tracker must move from the saved value before
            a new version is saved. Default: twice the step.
        warmup: Scores seen fleet-wide before the threshold starts to move.
        max_staleness: Seconds a replica may decide with a value it read
            earlier (default 0.1). It is also how long a replica batches its
            counts before sending them: one Redis call per replica per period
            at most, whatever the traffic.
        model: The model the threshold is set for; ``None`` accepts any.
        name: Identifies the threshold in events and in its Redis key
            (``guardrail:<namespace>:threshold:<name>``).
        clock: Seconds, monotonic (tests pass a controllable one).

    When Redis does not answer within the store's deadline, the replica keeps
    deciding with the last value it read, marks those decisions degraded
    (``call.degraded`` in a guard; :attr:`degraded` here), keeps its counts and
    tries again after ``max_staleness``; the first answer sends the counts
    and clears the state. A failure never raises into the caller.

    Pausing, the clamps and the clamp alarm act fleet-wide: :meth:`pause` stops
    the shared tracker for every replica, and the replica whose counts hit a
    clamp emits the one :class:`~guardrail.instrumentation.ThresholdClampHit`.
    """

    kind: ClassVar[str] = "threshold"

    def __init__(
        self,
        *,
        target_rate: float,
        initial: S,
        store: Any,
        step: float | None = None,
        lower: S | None = None,
        upper: S | None = None,
        dead_band: float | None = None,
        warmup: int = 0,
        max_staleness: float = 0.1,
        model: ModelRef | None = None,
        name: str = "threshold",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        checked = tracker_settings(
            target_rate=target_rate, initial=initial, step=step, lower=lower, upper=upper,
            dead_band=dead_band, warmup=warmup, model=model, name=name,
        )  # fmt: skip
        staleness = _number("max_staleness", max_staleness)
        if not 0.0 <= staleness <= 3600.0:
            raise ConfigError(f"max_staleness must lie in [0, 3600] seconds, got {max_staleness!r}")
        if not callable(getattr(store, "sync_client", None)):
            raise ConfigError("store must be a guardrail.limits.RedisStore")
        rate, eta, band, start = checked.rate, checked.step, checked.band, checked.start
        if abs(start) > _LOGIT_LIMIT:
            raise ConfigError(f"initial must be strictly inside its scale, got {initial!r}")
        # Numbers travel to Lua as text: no infinities.
        lo, hi = max(checked.lo, -_NO_CLAMP), min(checked.hi, _NO_CLAMP)
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
        self.max_staleness = staleness
        self.store = store
        self.key = f"guardrail:{store.namespace}:threshold:{name}"
        self._clock = clock
        # The configured values come back exactly: 0.9, not 0.8999999999999999.
        self._exact = {start: cast(float, initial.value)}
        for bound, internal in ((lower, lo), (upper, hi)):
            if bound is not None:
                self._exact[internal] = cast(float, bound.value)
        self._args = [
            repr(eta * (1.0 - rate)),
            repr(-eta * rate),
            repr(lo),
            repr(hi),
            repr(band),
            repr(max(band, eta)),
            str(warmup),
            repr(start),
        ]
        self._start = repr(start)
        self._lo, self._hi = lo, hi
        self._lock = fork_safe_lock(self)  # the counts and the cache
        self._syncing = fork_safe_lock(self, "_syncing")  # one Redis call at a time per replica
        self._ups = 0
        self._downs = 0
        self._published = self._threshold(start, 1)
        # What decisions compare with: the tracker's value as of the last answer.
        self._used = self._published
        self._paused = False
        self._synced_at = -math.inf
        self._script: Any = None
        #: True while Redis does not answer (decisions use the last value read).
        self.degraded = False
        #: Decisions made while degraded, in this process.
        self.degraded_decisions = 0
        #: Redis calls that failed, in this process.
        self.errors = 0
        #: Fleet-wide clamp hits, as of the last answer.
        self.clamp_hits = 0
        #: Scores seen fleet-wide, as of the last answer.
        self.seen = 0

    # -- conversions -----------------------------------------------------

    def _threshold(self, t: float, version: int) -> Threshold[S]:
        exact = self._exact.get(t)
        if exact is None:
            exact = 1.0 / (1.0 + math.exp(-t)) if self._logistic else t
        return Threshold(
            exact, scale=self._scale, model=self.model, origin="dynamic", version=version
        )

    # -- reading ---------------------------------------------------------

    def current(self) -> Threshold[S]:
        """The fleet's saved threshold, read at most ``max_staleness`` seconds ago.

        The read also sends this replica's pending counts (one Redis call).
        Decisions compare with :attr:`tracker` instead, which lies within
        ``dead_band`` of it.
        """
        if self._clock() - self._synced_at >= self.max_staleness:
            self.sync()
        return self._published

    @property
    def tracker(self) -> S:
        """The value decisions compare with: the fleet's tracker as of the last answer."""
        return self._scale(self._used.value)

    def _deciding(self) -> Threshold[S]:
        """The tracker's value (and the saved version) decisions use, read within staleness."""
        if self._clock() - self._synced_at >= self.max_staleness:
            self.sync()
        return self._used

    @property
    def paused(self) -> bool:
        """True while the shared tracker is paused (as of the last answer)."""
        return self._paused

    @property
    def pending(self) -> int:
        """Scores counted here and not sent to Redis yet."""
        return self._ups + self._downs

    # -- updating --------------------------------------------------------

    def update(self, value: S) -> None:
        """Count a score (or a batch) against the threshold this replica holds."""
        if type(value) is not self._scale:
            raise ScaleError(
                f"cannot update a {self._scale.__name__} threshold with a {type(value).__name__}"
            )
        self._count(self._used.admits(value))

    def _count(self, above: bool | NDArray[np.bool_]) -> None:
        """Count decisions above and below; send them once the cache is stale."""
        if isinstance(above, np.ndarray):
            ups = int(np.count_nonzero(above))
            downs = above.size - ups
        else:
            ups, downs = (1, 0) if above else (0, 1)
        with self._lock:
            self._ups += ups
            self._downs += downs
        if self._clock() - self._synced_at >= self.max_staleness:
            self.sync()

    def sync(self) -> bool:
        """Send the pending counts and read the fleet's threshold now; False if Redis failed.

        Another thread already talking to Redis for this replica makes this a
        no-op (its answer serves both).
        """
        if not self._syncing.acquire(blocking=False):
            return True
        try:
            with self._lock:
                ups, downs = self._ups, self._downs
                self._ups = self._downs = 0
            try:
                reply = self._call(ups, downs)
            except Exception:  # noqa: BLE001 - the last value decides; the counts wait
                with self._lock:
                    self._ups += ups
                    self._downs += downs
                    self._synced_at = self._clock()
                self.errors += 1
                self.degraded = True
                return False
            self._answer(reply)
            return True
        finally:
            self._syncing.release()

    def _call(self, ups: int, downs: int) -> Any:
        client = self.store.sync_client()
        script = self._script
        if script is None:
            script = self._script = client.register_script(_UPDATE)
        return script(keys=[self.key], args=[ups, downs, *self._args], client=client)

    def _answer(self, reply: Any) -> None:
        published, version, paused, hit, changed, hits, seen, tracker = reply
        t = float(published)
        threshold = self._threshold(t, int(version))
        tracked = float(tracker)
        used = threshold if tracked == t else self._threshold(tracked, int(version))
        with self._lock:
            self._published = threshold
            self._used = used
            self._paused = paused in (b"1", "1")
            self._synced_at = self._clock()
        self.degraded = False
        self.clamp_hits = int(hits)
        self.seen = int(seen)
        hit = hit.decode() if isinstance(hit, bytes) else hit
        if hit:
            bound: Literal["lower", "upper"] = "upper" if hit == "upper" else "lower"
            clamp = self._threshold(self._hi if bound == "upper" else self._lo, 1).value
            emit(ThresholdClampHit(source=self.source, bound=bound, value=clamp, hits=int(hits)))
        if int(changed):
            emit(
                ThresholdChanged(
                    source=self.source,
                    scale=self._scale.scale,
                    value=threshold.value,
                    version=threshold.version,
                )
            )

    # -- pausing ---------------------------------------------------------

    def pause(self, reason: str = "paused by hand") -> None:
        """Stop the shared tracker for every replica until :meth:`resume` (scores still count)."""
        self._set_paused(True, reason)

    def resume(self, reason: str = "resumed by hand") -> None:
        """Let the shared tracker move again, for every replica."""
        self._set_paused(False, reason)

    def _set_paused(self, paused: bool, reason: str) -> None:
        client = self.store.sync_client()
        was = client.eval(_PAUSE, 1, self.key, "1" if paused else "0", reason, self._start)
        self._paused = paused
        if (was in (b"1", "1")) != paused:
            emit(PauseChanged(source=self.source, paused=paused, reason=reason))

    # -- deciding ----------------------------------------------------------

    def decide(self, prediction: Prediction[S]) -> Decision[S]:
        """Compare *prediction* with :attr:`tracker`, then count the decision.

        The :class:`~guardrail.Decision` carries the value compared with and
        the version of the fleet's last saved value.
        """
        decision = self._deciding().decide(prediction)
        if self.degraded:
            self.degraded_decisions += 1
        self._count(decision.above)
        return decision

    def decide_call(self, call: Call) -> None:
        """The guard's decider: decide on ``call.prediction``, then count the decision."""
        prediction = call.prediction
        if prediction is None:
            return
        threshold = self._deciding()
        threshold.check_model(prediction.model)
        above = threshold.admits(prediction.value)
        call.decide(threshold, above)
        if self.degraded:
            self.degraded_decisions += 1
            call.mark_degraded()
        self._count(above)

    def __repr__(self) -> str:
        current = self._published
        return (
            f"SharedThreshold(name={self.name!r}, target_rate={self.target_rate}, "
            f"value={current.value!r}, version={current.version}, key={self.key!r})"
        )
