"""Action limits: caps on how many actions a model may cause per window, per key.

The counting algorithm (see ``docs/limits.md``): each window of length ``per``
is cut into ``buckets`` sub-windows of width ``w = ceil(per / buckets)``. A key
keeps one count per sub-window for the last ``buckets + 1`` of them and their
running total. An action at time ``t`` is allowed when that total plus its
weight stays within ``max_actions``. Any closed interval of length ``per``
meets at most ``buckets + 1`` consecutive sub-windows, and every action was
checked against the sum of exactly such a run ending at its own sub-window, so
no interval of length ``per`` ever holds more than ``max_actions``. An action
is counted for at most ``per + w``, which bounds early denial by one
sub-window. Memory and time are O(buckets) per key, whatever the traffic.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import math
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, ParamSpec, Protocol, TypeVar, cast

import attrs
import numpy as np

from ._call import Source
from ._durations import parse_duration
from ._errors import ActionLimitExceededError, ConfigError
from ._events import PauseChanged
from ._forks import fork_safe_lock, in_child
from ._hooks import add, emit, metrics_configured
from ._mechanism_events import LimitDegraded, LimitExceeded, LimitNear, LimitRecovered
from ._model import callable_name

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ._call import Call

__all__ = [
    "ActionLimit",
    "LimitCounter",
    "Receipt",
    "LimitStore",
    "MemoryStore",
    "Window",
]

P = ParamSpec("P")
R = TypeVar("R")

OnExceed = Literal["raise", "fallback", "report"]
OnError = Literal["closed", "open"]

# Decision codes returned by a counter: small ints, so the allow path builds nothing.
ALLOW = 0
NEAR = 1  # allowed, and a window crossed its near fraction
DENY = 2  # the bit every denial carries
DENY_FIRST = 3  # denied, and the first denial of this key in this sub-window: alert
DEGRADED = 4  # the store could not answer; the failure policy decided
PAUSED = 8  # denied by the limit's kill switch
RECOVERED = 16  # the store answered again after degraded decisions
FULL = 32  # a new key found the memory store at max_keys: the limit's on_error decides

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
#: The shortest window: one millisecond.
MIN_PER = 0.001


def _window_length(per: object) -> float:
    """A window's length in seconds (see :func:`~guardrail.parse_duration`), at least 1 ms."""
    seconds = parse_duration(per, name="the window")
    if seconds < MIN_PER:
        raise ConfigError(f"a window must be at least {MIN_PER} s, got {per!r}")
    return seconds


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_max(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _positive_int(attribute.name, value)


def _check_buckets(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _positive_int(attribute.name, value)
    if cast(int, value) > 1000:
        raise ConfigError(f"buckets must be at most 1000, got {value!r}")


@attrs.frozen
class Window:
    """At most *max_actions* per key in any interval of length *per*.

    Args:
        max_actions: The cap (a positive int).
        per: The window: seconds, or a string like ``"1m"``, ``"1h"``, ``"1d"``.
        buckets: Sub-windows per window. An action is counted for at most
            ``per * (1 + 1/buckets)``, so a denial comes at most one sub-window
            early; more buckets cost more memory per key.

    >>> Window(100, "1m")
    Window(max_actions=100, per=60.0, buckets=10)
    """

    max_actions: int = attrs.field(validator=_check_max)
    per: float = attrs.field(converter=_window_length)
    buckets: int = attrs.field(default=10, kw_only=True, validator=_check_buckets)

    @property
    def per_ns(self) -> int:
        """The window in nanoseconds."""
        return round(self.per * 1e9)

    @property
    def width_ns(self) -> int:
        """One sub-window in nanoseconds (rounded up, so ``buckets`` of them cover ``per``)."""
        return -(-self.per_ns // self.buckets)

    def describe(self) -> str:
        """A short label, e.g. ``"100/60s"``."""
        return f"{self.max_actions}/{self.per:g}s"


class LimitCounter(Protocol):
    """One limit's counts in a store (what :meth:`LimitStore.bind` returns).

    ``acquire`` returns a decision code (an int; bit 2 set means denied) and
    must never raise: a store that cannot answer applies its failure policy.
    """

    def acquire(self, key: str, weight: int) -> int:
        """Count *weight* actions for *key* if they fit; return the decision code."""

    async def acquire_async(self, key: str, weight: int) -> int:
        """:meth:`acquire` for async callers."""

    def peek(self, key: str) -> tuple[int, float]:
        """``(remaining, seconds until every counted action has expired)``."""


class LimitStore(Protocol):
    """Where action limits keep their counts: :class:`MemoryStore` or ``RedisStore``."""

    def bind(self, name: str, windows: tuple[Window, ...], near: float) -> LimitCounter:
        """The counter for the limit called *name* with these *windows*."""


class MemoryStore:
    """Counts in this process (the default store).

    Thread-safe and exact under contention: a decision waits for the lock,
    it is never denied because the lock is busy. No thread or timer: state
    expires lazily, and a sweep of expired keys runs when the number of keys
    has doubled since the last one, so a limit holds at most
    ``min(max_keys, max(1024, 2 * active keys))`` keys, where a key is active
    while it has an action counted in some window. A key costs about 250
    bytes per window (10 buckets) besides the key string itself.

    Args:
        clock: Seconds from a monotonic clock (``time.monotonic`` by
            default); tests pass a controllable one. Counts are kept in
            integer nanoseconds: the default clock is read as
            ``time.monotonic_ns``, another one is converted on each reading.
        max_keys: The most keys one limit keeps (keys come from inputs, so
            this bounds memory whatever the traffic). A decision for a new key
            when the limit already holds *max_keys* active keys cannot be
            counted: it is degraded, decided by the limit's ``on_error``
            (denied by default) and reported with
            :class:`~guardrail.instrumentation.LimitDegraded`. Keys already held are decided
            as usual.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 1_000_000
    ) -> None:
        if not callable(clock):
            raise ConfigError(f"clock must be a function returning seconds, got {clock!r}")
        self.clock = clock
        self.max_keys = _positive_int("max_keys", max_keys)
        self._clock_ns = time.monotonic_ns if clock is time.monotonic else _in_ns(clock)

    def bind(self, name: str, windows: tuple[Window, ...], near: float) -> MemoryCounter:
        """A fresh counter for one limit."""
        return MemoryCounter(windows, near, self._clock_ns, max_keys=self.max_keys)

    def __repr__(self) -> str:
        return f"MemoryStore(max_keys={self.max_keys})"


def _in_ns(clock: Callable[[], float]) -> Callable[[], int]:
    """A clock in seconds, read in integer nanoseconds."""

    def clock_ns() -> int:
        return round(clock() * 1e9)

    return clock_ns


def _near_at(window: Window, near: float) -> int:
    return max(1, math.ceil(window.max_actions * near))


class MemoryCounter:
    """One limit's counts in memory.

    Per key and window, a list ``[end, total, alerted, slot, c0, ..., ck]``:
    when the current sub-window ends (clock nanoseconds), the running total
    over the last ``k + 1`` sub-windows, whether this sub-window already sent
    an exceeded alert, the list index of the current sub-window's count, and
    the ``k + 1`` counts (a ring). A limit with one window maps a key to that
    list; with several, to a list of them.
    """

    def __init__(
        self,
        windows: tuple[Window, ...],
        near: float,
        clock_ns: Callable[[], int],
        *,
        max_keys: int = 1_000_000,
    ) -> None:
        self.windows = windows
        self.clock = clock_ns
        self.lock = fork_safe_lock(self, "lock")
        self.states: dict[str, Any] = {}
        self.max_keys = max_keys
        self.next_sweep = min(1024, max_keys)
        # When full: the clock time at which the next held key expires (a sweep
        # before then would free nothing, and costs O(keys)).
        self.next_expiry = 0
        self.single = len(windows) == 1
        self.near = near
        self.acquire: Callable[[str, int], int] = (
            self._one_window(windows[0], near) if self.single else self._many(near)
        )
        # The closures bind the lock: a forked child's fresh lock needs fresh ones.
        in_child(self, MemoryCounter._rebind)

    def _rebind(self) -> None:
        near = self.near
        self.acquire = self._one_window(self.windows[0], near) if self.single else self._many(near)

    # The allow path is a closure over locals (cheaper than attribute lookups),
    # compares the clock with the end of the sub-window instead of dividing,
    # and takes the lock with bound acquire/release (cheaper than ``with``).
    def _one_window(self, window: Window, near: float) -> Callable[[str, int], int]:
        clock, states, roll = self.clock, self.states, self._roll
        lock, unlock = self.lock.acquire, self.lock.release
        most, near_at = window.max_actions, _near_at(window, near)
        get = states.get

        def acquire(key: str, weight: int) -> int:
            now = clock()
            lock()
            try:
                state = get(key)
                if state is None or now >= state[0]:
                    state = roll(key, state, now)
                    if state is None:
                        return FULL | DEGRADED | DENY
                total = state[1] + weight
                if total <= most:
                    state[1] = total
                    state[state[3]] += weight
                    if total >= near_at and total - weight < near_at:
                        return NEAR
                    return ALLOW
                if state[2]:
                    return DENY
                state[2] = 1
                return DENY_FIRST
            finally:
                unlock()

        return acquire

    def _roll(self, key: str, state: list[int] | None, now: int) -> list[int] | None:
        """A single window's state moved to *now*; None when full (called with the lock held)."""
        window = self.windows[0]
        if state is None:
            entry = self._new(key, now)
            if entry is None:
                return None
            state = entry[0]
        else:
            _advance(state, now, window.width_ns, window.buckets + 1)
        return state

    def _many(self, near: float) -> Callable[[str, int], int]:
        clock, lock, states = self.clock, self.lock, self.states
        specs = [
            (i, w.width_ns, w.buckets + 1, w.max_actions, _near_at(w, near))
            for i, w in enumerate(self.windows)
        ]

        def acquire(key: str, weight: int) -> int:
            now = clock()
            with lock:
                entry = states.get(key)
                if entry is None:
                    entry = self._new(key, now)
                    if entry is None:
                        return FULL | DEGRADED | DENY
                for i, width, slots, most, _ in specs:
                    state = entry[i]
                    if now >= state[0]:
                        _advance(state, now, width, slots)
                    if state[1] + weight > most:
                        if state[2]:
                            return DENY
                        state[2] = 1
                        return DENY_FIRST
                code = ALLOW
                for i, _, _, _, near_at in specs:
                    state = entry[i]
                    total = state[1] = state[1] + weight
                    state[state[3]] += weight
                    if total >= near_at and total - weight < near_at:
                        code = NEAR
                return code

        return acquire

    def _new(self, key: str, now: int) -> list[list[int]] | None:
        """Fresh states for *key*, one per window; None when full (called with the lock held)."""
        states = self.states
        if len(states) >= self.next_sweep:
            if len(states) >= self.max_keys and now < self.next_expiry:
                return None
            self._sweep(now)
            if len(states) >= self.max_keys:
                return None
        entry = []
        for window in self.windows:
            width, slots = window.width_ns, window.buckets + 1
            bucket = now // width
            entry.append([(bucket + 1) * width, 0, 0, 4 + bucket % slots, *([0] * slots)])
        states[key] = entry[0] if self.single else entry
        return entry

    def _entry(self, key: str) -> list[list[int]] | None:
        found = self.states.get(key)
        if found is None:
            return None
        return [found] if self.single else cast(list[list[int]], found)

    def _sweep(self, now: int) -> None:
        """Drop keys with nothing counted any more (called with the lock held)."""
        spans = [w.width_ns * w.buckets for w in self.windows]
        states = self.states
        expired = []
        next_expiry = None
        for key in states:
            entry = self._entry(key)
            assert entry is not None
            expiry = max(s[0] + span for s, span in zip(entry, spans, strict=True))
            if expiry <= now:
                expired.append(key)
            elif next_expiry is None or expiry < next_expiry:
                next_expiry = expiry
        for key in expired:
            del states[key]
        self.next_expiry = now if next_expiry is None else next_expiry
        self.next_sweep = min(self.max_keys, max(1024, 2 * len(states)))

    async def acquire_async(self, key: str, weight: int) -> int:
        """The same decision: memory never waits on I/O."""
        return self.acquire(key, weight)

    def mark(self) -> int:
        """A clock reading to take before :meth:`acquire`, for a later :meth:`refund`."""
        return self.clock()

    def refund(self, key: str, weight: int, mark: int) -> None:
        """Give back *weight* counted for *key* by an acquire that began at *mark*.

        The count is taken from the sub-window holding *mark*: the one the
        action was counted in, or an older one when a sub-window began in
        between. Taking it from an older one gives back too little later
        (that sub-window leaves first), never too much, so the guarantee
        holds. Nothing is given back once that sub-window has left.
        """
        with self.lock:
            entry = self._entry(key)
            if entry is None:
                return
            for state, window in zip(entry, self.windows, strict=True):
                width, slots = window.width_ns, window.buckets + 1
                current = state[0] // width - 1
                bucket = min(mark // width, current)
                if current - bucket < slots:
                    state[4 + bucket % slots] -= weight
                    state[1] -= weight

    def peek(self, key: str) -> tuple[int, float]:
        """Remaining budget and seconds until every counted action has expired."""
        now = self.clock()
        with self.lock:
            entry = self._entry(key)
            if entry is None:
                return min(w.max_actions for w in self.windows), 0.0
            remaining, reset = None, 0
            for state, window in zip(entry, self.windows, strict=True):
                width, slots = window.width_ns, window.buckets + 1
                if now >= state[0]:
                    _advance(state, now, width, slots)
                left = max(0, window.max_actions - state[1])
                remaining = left if remaining is None else min(remaining, left)
                # The newest sub-window holding a count decides when all have expired.
                current = state[0] // width - 1
                for back in range(slots):
                    b = current - back
                    if state[4 + b % slots]:
                        reset = max(reset, (b + slots) * width - now)
                        break
            assert remaining is not None
            return remaining, reset / 1e9

    def __len__(self) -> int:
        return len(self.states)


def _advance(state: list[int], now: int, width: int, slots: int) -> None:
    """Move *state* to the sub-window holding *now*, dropping counts that left."""
    current = state[0] // width - 1
    bucket = now // width
    if bucket - current >= slots:
        for i in range(4, 4 + slots):
            state[i] = 0
        state[1] = 0
    else:
        total = state[1]
        # Sub-windows current-k .. bucket-k-1 leave; their slots are the new ones'.
        for b in range(current + 1, bucket + 1):
            i = 4 + b % slots
            total -= state[i]
            state[i] = 0
        state[1] = total
    state[0] = (bucket + 1) * width
    state[2] = 0
    state[3] = 4 + bucket % slots


#: The environment variable holding the secret that limit key digests are keyed with.
KEY_SECRET_ENV = "GUARDRAIL_KEY_SECRET"


def secret_key(secret: str | bytes) -> bytes:
    """The 32-byte BLAKE2b key made from a configured secret."""
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    return hashlib.sha256(b"guardrail-key-secret\0" + raw).digest()


def _event_secret() -> bytes:
    configured = os.environ.get(KEY_SECRET_ENV)
    # Without a configured secret, one per process: digests then match within
    # a process only, and cannot be reversed by hashing guesses.
    return secret_key(configured) if configured else os.urandom(32)


_EVENT_KEY = _event_secret()


def key_digest(key: str) -> str:
    """A short keyed digest of a limit key for events (keys come from inputs).

    Keyed with ``GUARDRAIL_KEY_SECRET`` (or a random per-process secret), so a
    digest cannot be reversed by hashing guesses of a small key space.
    """
    return hashlib.blake2b(
        key.encode("utf-8", "surrogatepass"), digest_size=8, key=_EVENT_KEY, person=b"event"
    ).hexdigest()


#: The counters a limit adds to through the hooks (the OpenTelemetry hook makes them counters).
_ALLOWED, _DENIED, _DEGRADED = (
    "guardrail.limit.allowed",
    "guardrail.limit.denied",
    "guardrail.limit.degraded",
)


def _windows_of(
    max_actions: int | None, per: float | str | None, windows: object
) -> tuple[Window, ...]:
    if not isinstance(windows, (list, tuple)):
        raise ConfigError(f"windows must be a list of Window values, got {windows!r}")
    if windows:
        if max_actions is not None or per is not None:
            raise ConfigError("give either max_actions and per, or windows, not both")
        if not all(isinstance(w, Window) for w in windows):
            raise ConfigError("windows must hold Window values")
        return tuple(windows)
    if max_actions is None or per is None:
        raise ConfigError("an ActionLimit needs max_actions and per (or windows)")
    return (Window(max_actions, per),)


def _one_of(name: str, value: object, *choices: str) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {value!r}")


class ActionLimit:
    """A cap on how many actions may be taken per window, per key.

    **Guarantee**: in any interval of length ``per``, at most ``max_actions``
    actions (weights summed) are allowed for one key. A denial may come early
    by at most one sub-window (``per / buckets``, 6 minutes for ``"1h"``).

    Args:
        name: Names the limit in events, metrics and the veto reason
            ``"limit:<name>"`` (letters, digits, ``_``, ``.``, ``-``).
        max_actions: The cap per window (with *per*).
        per: The window: seconds or ``"30s"``, ``"1m"``, ``"1h"``, ``"1d"``.
        windows: Instead of *max_actions*/*per*, several :class:`Window`
            values that all apply (e.g. 100 a minute and 2,000 a day).
        key: Which budget an action uses: called with the action function's
            arguments (standalone) or with one input row (in a guard); must
            return a str (a subclass such as ``numpy.str_`` or a ``StrEnum``
            counts as the string it holds). ``None``: one budget for every
            action. A key function that raises or returns a non-str leaves the
            call to ``on_error``.
        weight: Actions counted per call: an int, or a callable like *key*.
        on_exceed: ``"fallback"`` (default: skip the action; a decorated
            function returns *fallback*, a guard's decision becomes "don't
            act"), ``"raise"`` (:class:`~guardrail.errors.ActionLimitExceededError`) or
            ``"report"`` (allow, but report the denial: for rolling a limit out).
        fallback: What a decorated action function returns when denied.
        near: Send :class:`~guardrail.instrumentation.LimitNear` when a key's use crosses
            this fraction of a window.
        store: :class:`MemoryStore` (default) or ``RedisStore`` (shared).
        on_error: When a call cannot be decided (the key function raised or
            returned a non-str, a weight is invalid, a new key finds the
            memory store at ``max_keys``): ``"closed"`` (deny, the default)
            or ``"open"`` (allow). The decision is degraded.

    >>> import guardrail as gr
    >>> limit = gr.ActionLimit("block_card", max_actions=2, per="1h")
    >>> limit.allow(), limit.allow(), limit.allow()
    (True, True, False)
    >>> limit.remaining()
    0
    """

    # State, not a value: pause() and resume() switch the decision function,
    # and two limits with the same settings still count apart (equality is
    # identity). The settings are read-only properties.
    __slots__ = (
        "__weakref__", "_counter", "_decide", "_fallback", "_key", "_mark", "_max_actions",
        "_name", "_near", "_on_error", "_on_exceed", "_per", "_quiet_deny", "_reason", "_refunds",
        "_report", "_store", "_unit", "_weight", "_windows", "source",
    )  # fmt: skip

    kind: ClassVar[str] = "limit"
    #: Who emits this limit's events (set again when a guard takes it).
    source: Source

    def __init__(
        self,
        name: str,
        *,
        max_actions: int | None = None,
        per: float | str | None = None,
        windows: Sequence[Window] = (),
        key: Callable[..., str] | None = None,
        weight: int | Callable[..., int] = 1,
        on_exceed: OnExceed = "fallback",
        fallback: Any = None,
        near: float = 0.8,
        store: LimitStore | None = None,
        on_error: OnError = "closed",
    ) -> None:
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ConfigError(
                f"a limit name is 1-100 letters, digits, '_', '.' or '-', got {name!r}"
            )
        _one_of("on_exceed", on_exceed, "fallback", "raise", "report")
        _one_of("on_error", on_error, "closed", "open")
        windows = _windows_of(max_actions, per, windows)
        if key is not None and not callable(key):
            raise ConfigError(f"key must be a callable returning a str, got {key!r}")
        smallest = min(w.max_actions for w in windows)
        if callable(weight):
            unit = 1
        else:
            unit = _positive_int("weight", weight)
            if unit > smallest:
                raise ConfigError(
                    f"weight {unit} is above the limit ({smallest}): every action would be denied"
                )
        if isinstance(near, bool) or not isinstance(near, (int, float)) or not 0 < near <= 1:
            raise ConfigError(f"near must be a fraction in (0, 1], got {near!r}")
        if store is None:
            store = MemoryStore()
        elif not callable(getattr(store, "bind", None)):
            raise ConfigError(f"store must be a MemoryStore or RedisStore, got {store!r}")
        self._name = name
        self.source = Source("limit", name)
        self._max_actions = max_actions
        self._per = per
        self._windows = windows
        self._key = key
        self._weight = weight
        self._on_exceed: OnExceed = on_exceed
        self._fallback = fallback
        self._near = near
        self._store = store
        self._on_error: OnError = on_error
        counter = store.bind(name, windows, float(near))
        self._counter: LimitCounter = counter
        self._decide: Callable[[str, int], int] = counter.acquire
        self._unit = unit
        self._report = _Reporter(self, smallest)
        self._quiet_deny: bool | None = {"fallback": False, "report": True, "raise": None}[
            on_exceed
        ]
        # A forked child's counter has fresh closures (see MemoryCounter).
        in_child(self, _rebind_decide)
        self._refunds = callable(getattr(counter, "mark", None)) and callable(
            getattr(counter, "refund", None)
        )
        #: The counter's clock reading before a decision, for a refund (None: no refunds).
        self._mark: Callable[[], int] | None = (
            cast(_Refunding, counter).mark if self._refunds else None
        )
        self._reason = f"limit:{name}"

    # -- settings -----------------------------------------------------------

    @property
    def name(self) -> str:
        """Names the limit in events, metrics and veto reasons."""
        return self._name

    @property
    def max_actions(self) -> int | None:
        """The cap per window, as given (``None`` when *windows* were given)."""
        return self._max_actions

    @property
    def per(self) -> float | str | None:
        """The window, as given (``None`` when *windows* were given)."""
        return self._per

    @property
    def windows(self) -> tuple[Window, ...]:
        """Every window that applies (one made of *max_actions* and *per*, or *windows*)."""
        return self._windows

    @property
    def key(self) -> Callable[..., str] | None:
        """Which budget an action uses; ``None``: one budget for every action."""
        return self._key

    @property
    def weight(self) -> int | Callable[..., int]:
        """Actions counted per call: an int, or a function of the call's arguments."""
        return self._weight

    @property
    def on_exceed(self) -> OnExceed:
        """What a denial does: ``"fallback"``, ``"raise"`` or ``"report"``."""
        return self._on_exceed

    @property
    def fallback(self) -> Any:
        """What a decorated action function returns when denied."""
        return self._fallback

    @property
    def near(self) -> float:
        """The fraction of a window whose crossing sends a ``LimitNear`` event."""
        return self._near

    @property
    def store(self) -> LimitStore:
        """Where the counts are kept."""
        return self._store

    @property
    def on_error(self) -> OnError:
        """What an undecidable call gets: ``"closed"`` (deny) or ``"open"`` (allow)."""
        return self._on_error

    def __repr__(self) -> str:
        return (
            f"ActionLimit(name={self._name!r}, max_actions={self._max_actions!r}, "
            f"per={self._per!r}, windows={self._windows!r}, key={self._key!r}, "
            f"weight={self._weight!r}, on_exceed={self._on_exceed!r}, "
            f"fallback={self._fallback!r}, near={self._near!r}, store={self._store!r}, "
            f"on_error={self._on_error!r})"
        )

    # -- deciding ---------------------------------------------------------

    def allow(self, key: str | None = None, *, weight: int | None = None) -> bool:
        """Count one action (or *weight*) for *key* if it fits; may it go ahead?

        Applies ``on_exceed``: ``"fallback"`` returns False, ``"raise"``
        raises :class:`~guardrail.errors.ActionLimitExceededError`, ``"report"`` returns
        True and reports. *key* is the key function's kind of output.

        A *key* that is not a str or a *weight* that is not an int is a
        :class:`TypeError` (a bug in the caller, not a decision); an int
        weight outside ``1..max_actions`` is decided by ``on_error``.
        """
        if key is None:
            key = ""
        elif key.__class__ is not str:
            key = _as_str(key)
        if weight is None:
            weight = self._unit
        elif not self._report.weight_ok(weight):
            if weight.__class__ is not int:
                raise _argument_type_error("weight", weight)
            return self._report.settle(DEGRADED | DENY, key, f"bad weight {weight!r}")
        code = self._decide(key, weight)
        if code == 0:
            if metrics_configured():
                self._report.count(0, 0)
            return True
        if code == DENY and self._quiet_deny is not None:
            # A repeated denial (its alert already sent): as cheap as an allow.
            if metrics_configured():
                self._report.count(DENY, 0)
            return self._quiet_deny
        return self._report.settle(code, key, None)

    async def allow_async(self, key: str | None = None, *, weight: int | None = None) -> bool:
        """:meth:`allow` for async callers (a Redis store then does async I/O)."""
        if key is None:
            key = ""
        elif key.__class__ is not str:
            key = _as_str(key)
        if weight is None:
            weight = self._unit
        elif not self._report.weight_ok(weight):
            if weight.__class__ is not int:
                raise _argument_type_error("weight", weight)
            return self._report.settle(DEGRADED | DENY, key, f"bad weight {weight!r}")
        if self._decide is _paused:
            code = self._decide(key, weight)
        else:
            code = await self._counter.acquire_async(key, weight)
        if code == 0:
            if metrics_configured():
                self._report.count(0, 0)
            return True
        return self._report.settle(code, key, None)

    def _key_and_weight(self, args: Any, kwargs: Any) -> tuple[str, int, str | None]:
        """The key and weight of one call; an error message instead of raising."""
        key_fn, weight = self._key, self._weight
        key = ""
        try:
            if key_fn is not None:
                key = key_fn(*args, **kwargs)
                if key.__class__ is not str:
                    if not isinstance(cast(object, key), str):
                        return "", 0, f"the key function returned {type(key).__name__}, not str"
                    key = str.__str__(key)
            if callable(weight):
                weight = weight(*args, **kwargs)
                if not self._report.weight_ok(weight):
                    return key, 0, f"the weight function returned a bad {type(weight).__name__}"
        except Exception as e:  # noqa: BLE001 - the failure policy decides instead
            # The type only: formatting the exception may raise, or show input values.
            return key, 0, f"the key or weight function raised {type(e).__name__}"
        return key, weight, None

    def _call_code(self, args: Any, kwargs: Any) -> tuple[int, str, str | None]:
        """Decide one call: ``(code, key, error)``; never raises."""
        key, weight, error = self._key_and_weight(args, kwargs)
        if error is not None:
            return DEGRADED | DENY, key, error
        return self._decide(key, weight), key, None

    def _call_allowed(self, args: Any, kwargs: Any) -> bool:
        if self._key is None and not callable(self._weight):
            return self.allow()
        code, key, error = self._call_code(args, kwargs)
        if code == 0:
            if metrics_configured():
                self._report.count(0, 0)
            return True
        return self._report.settle(code, key, error)

    async def _call_allowed_async(self, args: Any, kwargs: Any) -> bool:
        key, weight, error = self._key_and_weight(args, kwargs)
        if error is not None:
            return self._report.settle(DEGRADED | DENY, key, error)
        return await self.allow_async(key, weight=weight)

    def guard(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate an action function: each call is one action (or *weight*).

        A denied call does not run the function: it returns ``fallback``,
        raises :class:`~guardrail.errors.ActionLimitExceededError` or, with ``on_exceed="report"``,
        runs anyway and is reported. Works on ``async def`` functions too.

        >>> import guardrail as gr
        >>> limit = gr.ActionLimit("sms", max_actions=1, per="1m", fallback="skipped")
        >>> @limit.guard
        ... def send_sms(user: str) -> str:
        ...     return f"sent to {user}"
        >>> send_sms("ada"), send_sms("bob")
        ('sent to ada', 'skipped')
        """
        fallback = self._fallback
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[..., Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def limited_async(*args: Any, **kwargs: Any) -> Any:
                if await self._call_allowed_async(args, kwargs):
                    return await afn(*args, **kwargs)
                return fallback

            return cast(Callable[P, R], limited_async)

        allowed = self._call_allowed
        key_fn = self._key
        if key_fn is None or callable(self._weight):

            @functools.wraps(fn)
            def limited(*args: P.args, **kwargs: P.kwargs) -> R:
                if allowed(args, kwargs):
                    return fn(*args, **kwargs)
                return cast(R, fallback)

            return limited

        # The common keyed case, decided here without the general path's calls.
        unit, report = self._unit, self._report

        @functools.wraps(fn)
        def limited_by_key(*args: P.args, **kwargs: P.kwargs) -> R:
            error = None
            try:
                key = key_fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - the failure policy decides instead
                key, error = "", f"the key function raised {type(e).__name__}"
            if error is None and key.__class__ is not str and isinstance(key, str):
                key = str.__str__(key)  # numpy.str_, StrEnum: counted as that string
            if key.__class__ is str and error is None:
                code = self._decide(key, unit)
                if code == 0:
                    if metrics_configured():
                        report.count(0, 0)
                    return fn(*args, **kwargs)
            else:
                if error is None:
                    error = f"the key function returned {type(key).__name__}, not str"
                key, code = "", DEGRADED | DENY
            if report.settle(code, key, error):
                return fn(*args, **kwargs)
            return cast(R, fallback)

        return limited_by_key

    # -- inspection and kill switch ---------------------------------------

    def remaining(self, key: str | None = None) -> int:
        """Actions *key* may still take now (the tightest window); 0 while paused."""
        if self.paused:
            return 0
        return self._counter.peek("" if key is None else key)[0]

    def reset_at(self, key: str | None = None) -> float:
        """When (Unix seconds) every action counted for *key* will have expired."""
        return time.time() + self._counter.peek("" if key is None else key)[1]

    @property
    def paused(self) -> bool:
        """Whether the kill switch is on (every action denied)."""
        return self._decide is _paused

    def pause(self, reason: str = "") -> None:
        """Turn the kill switch on: deny every action until :meth:`resume`."""
        self._decide = _paused
        emit(PauseChanged(source=self.source, paused=True, reason=reason))

    def resume(self, reason: str = "") -> None:
        """Turn the kill switch off."""
        self._decide = self._counter.acquire
        emit(PauseChanged(source=self.source, paused=False, reason=reason))

    def to_dict(self) -> dict[str, Any]:
        """The settings, JSON-ready (a guard's configuration fingerprint includes them).

        Functions are described by their qualified name; the store by its kind
        and, for Redis, its namespace, deadline and failure policy.
        """
        store = self.store
        store_settings: dict[str, Any] = {"type": type(store).__name__}
        for attribute in (
            "namespace",
            "deadline",
            "on_store_error",
            "local_share",
            "processes",
            "on_state_lost",
        ):
            if hasattr(store, attribute):
                store_settings[attribute] = getattr(store, attribute)
        return {
            "windows": [
                {"max_actions": w.max_actions, "per": w.per, "buckets": w.buckets}
                for w in self.windows
            ],
            "key": None if self.key is None else callable_name(self.key),
            "weight": callable_name(self.weight) if callable(self.weight) else self.weight,
            "on_exceed": self.on_exceed,
            "near": self.near,
            "on_error": self.on_error,
            "store": store_settings,
        }

    # -- the guard's limiter role ------------------------------------------

    def acquire_call(self, call: Call) -> list[Receipt] | Receipt | None:
        """Count the call's positive decisions; veto those past the limit.

        An action is a positive decision (``call.act``). A denied one becomes
        "don't act" with the reason ``"limit:<name>"``; with
        ``on_exceed="raise"`` the call raises instead, and what the batch's
        earlier rows counted is given back: none of its actions is taken.
        The key function sees each row as :class:`~guardrail.mechanisms.Inputs`
        gives it (a dict for a DataFrame's rows). Returns what was counted,
        for :meth:`refund_call`.
        """
        act = call.act
        if act is None:
            return None
        if isinstance(act, bool):
            return self._acquire_one(call) if act else None
        receipts: list[Receipt] | None = [] if self._refunds else None
        inputs = call.inputs
        denied = np.zeros(len(act), dtype=np.bool_)
        try:
            for i in np.flatnonzero(act).tolist():
                try:
                    row = inputs.row(i)
                except Exception:  # noqa: BLE001 - no row: the key function cannot run
                    row = None
                if not self._row_allowed(call, row, i, receipts):
                    denied[i] = True
        except BaseException:
            if receipts:
                self._refund(receipts)
            raise
        if denied.any():
            call.veto(self._reason, denied)
        return receipts or None

    def _acquire_one(self, call: Call) -> list[Receipt] | Receipt | None:
        """One row that acts: its receipt is one tuple, and an allow builds nothing else."""
        inputs = call.inputs
        row = inputs.raw if inputs.kind == "row" else inputs.row(0)
        weight = self._weight
        if weight.__class__ is not int:
            receipts: list[Receipt] | None = [] if self._refunds else None
            if not self._row_allowed(call, row, None, receipts):
                call.veto(self._reason)
            return receipts or None
        key_fn = self._key
        key: Any = ""
        if key_fn is not None:
            try:
                key = key_fn(row)
            except Exception as e:  # noqa: BLE001 - the failure policy decides instead
                # The type only: formatting the exception may raise, or show input values.
                error = f"the key or weight function raised {type(e).__name__}"
                self._settle_one(call, DEGRADED | DENY, "", error)
                return None
            if key.__class__ is not str:
                if not isinstance(key, str):
                    error = f"the key function returned {type(key).__name__}, not str"
                    self._settle_one(call, DEGRADED | DENY, "", error)
                    return None
                key = str.__str__(key)  # numpy.str_, StrEnum: counted as that string
        mark = self._mark
        begun = 0 if mark is None else mark()
        code = self._decide(key, weight)
        if code == 0:
            if metrics_configured():
                self._report.count(0, 0)
            return None if mark is None else (None, key, weight, begun)
        counted = mark is not None and not code & (DENY | DEGRADED)
        self._settle_one(call, code, key, None)
        return (None, key, weight, begun) if counted else None

    def _settle_one(self, call: Call, code: int, key: str, error: str | None) -> None:
        """Report one row's decision that was not a plain allow; veto it if denied."""
        if code & DEGRADED:
            call.mark_degraded()
        if not self._report.settle(code, key, error):
            call.veto(self._reason)

    def refund_call(self, receipt: object, act: bool | NDArray[np.bool_] | None) -> None:
        """Give back what *receipt* counted for rows not acted on (all if *act* is None)."""
        if receipt.__class__ is tuple:  # one row's
            if not act:
                self._refund([cast("Receipt", receipt)])
            return
        receipts = cast("list[Receipt]", receipt)
        if act is not None:
            receipts = [r for r in receipts if not (act if r[0] is None else act[r[0]])]  # type: ignore[index]
        if receipts:
            self._refund(receipts)

    def _row_allowed(
        self, call: Call, row: Any, index: int | None, receipts: list[Receipt] | None
    ) -> bool:
        if receipts is None:
            code, key, error = self._call_code((row,), {})
        else:
            key, weight, error = self._key_and_weight((row,), {})
            if error is not None:
                code = DEGRADED | DENY
            else:
                mark = cast(_Refunding, self._counter).mark()
                code = self._decide(key, weight)
                if not code & (DENY | DEGRADED):  # counted in the store
                    receipts.append((index, key, weight, mark))
        if code == 0:
            if metrics_configured():
                self._report.count(0, 0)
            return True
        if code & DEGRADED:
            call.mark_degraded()
        return self._report.settle(code, key, error)

    def _refund(self, receipts: list[Receipt]) -> None:
        """Give back what *receipts* counted (never raises: a lost refund only overcounts)."""
        refund = cast(_Refunding, self._counter).refund
        for _, key, weight, mark in receipts:
            # A failed refund leaves the count in place: the safe side.
            with contextlib.suppress(Exception):
                refund(key, weight, mark)

    # -- the same role for async guards -----------------------------------

    async def acquire_call_async(self, call: Call) -> list[Receipt] | None:
        """:meth:`acquire_call` for a guard on an ``async def`` function.

        The same counts, vetoes, events and receipts; a Redis store decides
        through ``redis.asyncio``, so waiting on Redis never blocks the event
        loop (see :class:`~guardrail.mechanisms.AsyncLimiter`).
        """
        act = call.act
        if act is None:
            return None
        receipts: list[Receipt] | None = [] if self._refunds else None
        reason = f"limit:{self.name}"
        inputs = call.inputs
        if isinstance(act, bool):
            if act and not await self._row_allowed_async(call, inputs.row(0), None, receipts):
                call.veto(reason)
            return receipts or None
        denied = np.zeros(len(act), dtype=np.bool_)
        try:
            for i in np.flatnonzero(act).tolist():
                try:
                    row = inputs.row(i)
                except Exception:  # noqa: BLE001 - no row: the key function cannot run
                    row = None
                if not await self._row_allowed_async(call, row, i, receipts):
                    denied[i] = True
        except BaseException:
            # Raised or cancelled mid-batch: none of its actions is taken.
            if receipts:
                await self._refund_async(receipts)
            raise
        if denied.any():
            call.veto(reason, denied)
        return receipts or None

    async def refund_call_async(
        self, receipt: object, act: bool | NDArray[np.bool_] | None
    ) -> None:
        """:meth:`refund_call` for a guard on an ``async def`` function."""
        receipts = cast("list[Receipt]", receipt)
        if act is not None:
            receipts = [r for r in receipts if not (act if r[0] is None else act[r[0]])]  # type: ignore[index]
        if receipts:
            await self._refund_async(receipts)

    async def _row_allowed_async(
        self, call: Call, row: Any, index: int | None, receipts: list[Receipt] | None
    ) -> bool:
        key, weight, error = self._key_and_weight((row,), {})
        if error is not None:
            code = DEGRADED | DENY
        elif self._decide is _paused:
            code = _paused(key, weight)
        elif receipts is None:
            code = await self._counter.acquire_async(key, weight)
        else:
            mark = cast(_Refunding, self._counter).mark()
            code = await self._counter.acquire_async(key, weight)
            if not code & (DENY | DEGRADED):  # counted in the store
                receipts.append((index, key, weight, mark))
        if code == 0:
            if metrics_configured():
                self._report.count(0, 0)
            return True
        if code & DEGRADED:
            call.mark_degraded()
        return self._report.settle(code, key, error)

    async def _refund_async(self, receipts: list[Receipt]) -> None:
        """:meth:`_refund` through the counter's async refund, when it has one."""
        counter = self._counter
        refund_async = getattr(counter, "refund_async", None)
        if refund_async is None:
            self._refund(receipts)
            return
        for _, key, weight, mark in receipts:
            with contextlib.suppress(Exception):
                await refund_async(key, weight, mark)


#: One counted action: its row (None for one row), key, weight and the counter's mark.
Receipt = tuple[int | None, str, int, int]


class _Refunding(Protocol):
    """A counter that can give counts back (both built-in stores' counters can)."""

    def mark(self) -> int: ...

    def refund(self, key: str, weight: int, mark: int) -> None: ...


def _as_str(key: object) -> str:
    """A str subclass (``numpy.str_``, ``StrEnum``) as the plain string it holds."""
    if isinstance(key, str):
        return str.__str__(key)
    raise _argument_type_error("key", key)


def _argument_type_error(name: str, value: object) -> TypeError:
    expected = "a str" if name == "key" else "an int"
    return TypeError(f"the {name} must be {expected}, got {type(value).__name__}: {value!r:.80}")


def _rebind_decide(limit: ActionLimit) -> None:
    if limit._decide is not _paused:
        limit._decide = limit._counter.acquire


def _paused(key: str, weight: int) -> int:
    return PAUSED | DENY


@attrs.define(eq=False)
class _Reporter:
    """A limit's slow path: events, metrics and the on_exceed policy."""

    limit: ActionLimit
    smallest: int
    lock: threading.Lock = attrs.Factory(lambda self: fork_safe_lock(self, "lock"), takes_self=True)
    degraded_total: int = 0
    degraded_unreported: int = 0
    degraded_last_event: float = -math.inf
    outage: int = 0

    def weight_ok(self, weight: object) -> bool:
        return (
            isinstance(weight, int) and not isinstance(weight, bool) and 0 < weight <= self.smallest
        )

    def count(self, code: int, degraded: int) -> None:
        """Count one decision through the hooks (callers check metrics_configured() first)."""
        attributes = {"guardrail.limit": self.limit.name}
        add(_DENIED if code & DENY else _ALLOWED, 1, attributes)
        if degraded:
            add(_DEGRADED, 1, attributes)

    def settle(self, code: int, key: str, error: str | None) -> bool:
        """Report a decision that was not a plain allow; apply on_exceed."""
        limit = self.limit
        degraded = code & DEGRADED
        if code & FULL:
            error = "the memory store holds max_keys active keys: a new key cannot be counted"
        if code & RECOVERED:
            with self.lock:
                outage, self.outage = self.outage, 0
            # A decision degraded in another thread may not be counted yet: it
            # stays in self.outage and is reported with the next recovery.
            if outage:
                emit(LimitRecovered(source=limit.source, degraded_decisions=outage))
        if degraded:
            if error is not None and limit.on_error == "open":
                code = DEGRADED  # a bad key or weight: on_error decides, not the store
            self._degraded(error)
        if metrics_configured():
            self.count(code, degraded)
        if not code & DENY:
            if code & NEAR:
                emit(
                    LimitNear(
                        source=limit.source,
                        key=key_digest(key) if key else None,
                        near=limit.near,
                    )
                )
            return True
        report_only = limit.on_exceed == "report"
        paused = bool(code & PAUSED)
        if code & 1 and not paused:
            emit(
                LimitExceeded(
                    source=limit.source,
                    key=key_digest(key) if key else None,
                    windows=tuple(w.describe() for w in limit.windows),
                    report_only=report_only,
                    degraded=bool(degraded),
                )
            )
        if report_only:
            return True
        if limit.on_exceed == "raise":
            raise ActionLimitExceededError(
                limit.name, key or None, paused=paused, degraded=bool(degraded)
            )
        return False

    def _degraded(self, error: str | None) -> None:
        now = time.monotonic()
        with self.lock:
            self.degraded_total += 1
            # A new outage (none since the last recovery) is reported at once.
            first = self.outage == 0
            self.outage += 1
            self.degraded_unreported += 1
            if not first and now - self.degraded_last_event < 1.0:
                return
            decisions, self.degraded_unreported = self.degraded_unreported, 0
            self.degraded_last_event = now
        limit = self.limit
        if error is None:
            error = getattr(limit._counter, "last_error", "") or "the store did not answer"
            policy = getattr(limit.store, "on_store_error", "closed")
        else:
            policy = limit.on_error
        emit(LimitDegraded(source=limit.source, policy=policy, error=error, decisions=decisions))
