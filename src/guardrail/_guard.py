"""The guard: composes the mechanisms around one call of a predict function."""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

import attrs
import numpy as np
from opentelemetry import trace as _trace_state
from opentelemetry.metrics import _internal as _metrics_state

from ._call import Call, Mechanism
from ._config import CONFIG, GLOBAL_OTEL, OFF, UNRESOLVED
from ._errors import ConfigError, OutOfScaleError, PolicyError, ScaleError
from ._events import KillSwitchChanged, MachineryError, OutOfScale, PredictionMade
from ._guard_config import GuardConfig, OutOfScalePolicy
from ._hooks import emit
from ._model import ModelRef, callable_name
from ._prediction import Decision, Prediction, Threshold
from ._scales import SCALES
from ._scales import ScaleValue as _Value

if TYPE_CHECKING:
    from typing import TypeAlias

    from numpy.typing import NDArray

    from ._otel import CallScope

    #: What a predict function may return: one number, or a batch of them.
    Raw: TypeAlias = float | np.floating[Any] | NDArray[Any] | Sequence[float]

__all__ = [
    "Guard",
    "GuardStats",
    "PredictionOutOfScaleError",
    "guard",
    "guard_of",
    "kill_all",
    "registry",
    "revive_all",
]

P = ParamSpec("P")
S = TypeVar("S", bound=_Value[Any])
O = TypeVar("O")  # noqa: E741 - the guarded call's output type


_new = object.__new__
_tuple_new = tuple.__new__
_set = object.__setattr__
_now = time.time
_perf = time.perf_counter


# Bounds that a float must lie within to be on each scale, for the inline check
# of the fast path (NaN fails every comparison; the Score bounds exclude ±inf).
_FAST_RANGE = {
    "probability": (0.0, 1.0),
    "log-odds": (-math.inf, math.inf),
    "score": (-sys.float_info.max, sys.float_info.max),
}
# Slot setters, looked up once: cheaper per call than object.__setattr__.
_VALUE_SETTER = {cls.scale: cls.__dict__["value"].__set__ for cls in SCALES.values()}


class PredictionOutOfScaleError(OutOfScaleError, PolicyError):
    """A predict function returned a value off its declared scale.

    Raised by a guard with ``on_out_of_scale="raise"`` (the default).
    """


@attrs.frozen
class GuardStats:
    """A snapshot of one guard: identity, state and counters."""

    name: str
    model: ModelRef
    config_fingerprint: str
    killed: bool
    kill_reason: str
    calls: int
    errors: int
    machinery_errors: int
    out_of_scale: int


def _count(counter: itertools.count[int]) -> int:
    """How many times *counter* has been advanced (it starts at 1)."""
    return int(repr(counter)[6:-1]) - 1


class _FixedThreshold:
    """Adapts a fixed Threshold to the mechanism protocol."""

    name = "threshold"

    def __init__(self, threshold: Threshold[Any]) -> None:
        self.threshold = threshold

    def before(self, call: Call) -> None:
        pass

    def after(self, call: Call) -> None:
        threshold = self.threshold
        assert call.prediction is not None
        above = threshold.admits(call.prediction.value)
        call.threshold, call.above, call.act = threshold, above, above


class Guard(Generic[S]):
    """The object beneath :func:`guard`: a predict function's guardrails.

    Use it directly where a decorator does not fit::

        g = gr.Guard(gr.GuardConfig(model=model, returns=gr.Probability, name="fraud"))
        prediction = g.run(clf_score, row)

    Calls are thread-safe. The guard registers itself (see :func:`registry`)
    and has a kill switch (:meth:`kill`): while killed, predictions are still
    returned but no action is taken (``Decision.act`` is False with reason
    ``"kill-switch"``).
    """

    def __init__(self, config: GuardConfig) -> None:
        if not isinstance(config, GuardConfig):
            raise ConfigError(f"Guard takes a GuardConfig, got {type(config).__name__}")
        self.config = config
        self.name = config.name or config.model.name
        self.model = config.model
        self.scale = config.returns
        self.fingerprint = config.fingerprint
        self._on_out_of_scale: OutOfScalePolicy = config.on_out_of_scale
        threshold = config.threshold
        if isinstance(threshold, Threshold):
            threshold = _FixedThreshold(threshold)
        self._decides = threshold is not None
        self._before = tuple(m for m in (config.inputs,) if m is not None)
        self._decision_steps = tuple(m for m in (threshold, config.holdout) if m is not None)
        self._limits = tuple(config.limits)
        if self._limits:
            # Limits run as a chain: what a later one denies, earlier ones give back.
            from ._limits import run_limits

            self._run_limits = run_limits
        self._after_all = tuple(m for m in (config.outcomes,) if m is not None)
        self._plain = not (self._before or self._decides or self._after_all)
        self._fixed_only = (
            isinstance(config.threshold, Threshold)
            and not (self._before or self._after_all or self._limits)
            and config.holdout is None
        )
        self._fast = self._plain or self._fixed_only
        self._fast_result = self._bind_fast_result()
        self._calls = itertools.count(1)
        self._errors = itertools.count(1)
        self._machinery_errors = itertools.count(1)
        self._out_of_scale = itertools.count(1)
        self.killed = False
        self.kill_reason = ""
        _register(self)

    # -- the kill switch --------------------------------------------------------

    def kill(self, reason: str = "") -> None:
        """Stop all actions of this guard; predictions are still returned."""
        self.killed, self.kill_reason = True, reason
        emit(KillSwitchChanged(guard=self.name, killed=True, reason=reason))

    def revive(self) -> None:
        """Undo :meth:`kill`."""
        self.killed, self.kill_reason = False, ""
        emit(KillSwitchChanged(guard=self.name, killed=False, reason=""))

    def stats(self) -> GuardStats:
        """A snapshot of this guard's state and counters."""
        return GuardStats(
            name=self.name,
            model=self.model,
            config_fingerprint=self.fingerprint,
            killed=self.killed or CONFIG.killed,
            kill_reason=self.kill_reason or CONFIG.kill_reason,
            calls=_count(self._calls),
            errors=_count(self._errors),
            machinery_errors=_count(self._machinery_errors),
            out_of_scale=_count(self._out_of_scale),
        )

    # -- running a call -----------------------------------------------------------

    def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)`` under this guard."""
        next(self._calls)
        if self._fast and _quiet():
            try:
                raw = fn(*args, **kwargs)
            except BaseException:
                next(self._errors)
                raise
            if type(raw) is np.ndarray:
                _take_over(raw)
            return self._fast_result(raw, args)
        call, scopes = self._enter(args)
        error: BaseException | None = None
        try:
            self._before_call(call)
            try:
                raw = fn(*args, **kwargs)
            except BaseException:
                next(self._errors)
                raise
            if type(raw) is np.ndarray:
                _take_over(raw)
            return self._finish(call, raw)
        except BaseException as e:
            error = e
            raise
        finally:
            self._exit(call, scopes, error)

    async def run_async(
        self, fn: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any
    ) -> Any:
        """Await ``fn(*args, **kwargs)`` under this guard."""
        next(self._calls)
        call, scopes = self._enter(args)
        error: BaseException | None = None
        try:
            self._before_call(call)
            try:
                raw = await fn(*args, **kwargs)
            except BaseException:
                next(self._errors)
                raise
            if type(raw) is np.ndarray:
                _take_over(raw)
            return self._finish(call, raw)
        except BaseException as e:
            error = e
            raise
        finally:
            self._exit(call, scopes, error)

    def _enter(self, args: tuple[Any, ...]) -> tuple[Call, list[tuple[Any, CallScope | None]]]:
        """Open the call's context and telemetry scopes (never raises)."""
        if CONFIG.mode == UNRESOLVED:
            _ = CONFIG.hooks  # choose the default hooks now
        inputs = args[0] if args else None
        call = Call(self.name, self.model, inputs, _batch_size(inputs), started=_perf())
        scopes: list[tuple[Any, CallScope | None]] = []
        for hook in CONFIG.call_hooks:
            try:
                scopes.append((hook, hook.start_call(self.name, self.fingerprint)))
            except Exception as e:  # noqa: BLE001 - telemetry must not break the call
                self._machinery_error("telemetry", e)
        return call, scopes

    def _before_call(self, call: Call) -> None:
        for mechanism in self._before:
            self._step(mechanism.before, mechanism, call)

    def _finish(self, call: Call, raw: object) -> Any:
        try:
            value = self.scale(_as_raw(raw))
            on_scale = True
        except (OutOfScaleError, ScaleError) as e:
            value = self._out_of_scale_value(raw, e)
            on_scale = False
        prediction = Prediction._fast(value, self.model)
        call.prediction = prediction
        if not self._decides:
            for mechanism in self._after_all:
                self._step(mechanism.after, mechanism, call)
            return prediction
        if on_scale:
            for mechanism in self._decision_steps:
                self._step(mechanism.after, mechanism, call)
        if call.threshold is None:
            # No basis for an action: the value is off its scale, or the
            # threshold step failed (then the decision is marked degraded).
            fixed = self.config.threshold
            call.threshold = (
                fixed
                if isinstance(fixed, Threshold)
                else Threshold(_neutral(prediction), scale=self.scale, model=self.model)
            )
            call.above = call.act = _none_like(prediction)
            call.degraded = on_scale
        if not on_scale:
            call.reasons.append("out-of-scale")
        if self.killed or CONFIG.killed:
            call.veto("kill-switch")
        if self._limits:
            self._run_limits(self._limits, call, self._step)
        for mechanism in self._after_all:
            self._step(mechanism.after, mechanism, call)
        return Decision(
            prediction=prediction,
            threshold=call.threshold,
            above=call.above if call.above is not None else False,
            act=call.act if call.act is not None else False,
            reasons=tuple(call.reasons),
            arm=call.arm,
            intended=call.intended,
            propensity=call.propensity,
            degraded=call.degraded,
        )

    def _exit(
        self,
        call: Call,
        scopes: list[tuple[Any, CallScope | None]],
        error: BaseException | None,
    ) -> None:
        killed = self.killed or CONFIG.killed
        for hook, scope in reversed(scopes):
            try:
                hook.end_call(scope, call, error, killed)
            except Exception as e:  # noqa: BLE001 - telemetry must not break the call
                self._machinery_error("telemetry", e)
        if error is None and call.prediction is not None and CONFIG.prediction_hooks:
            value = call.prediction.value.value
            event = PredictionMade(
                guard=self.name,
                model=self.model,
                scale=self.scale.scale,
                prediction_id=call.prediction.id,
                score=value if isinstance(value, float) else None,
                batch_size=call.batch_size,
                duration_s=_perf() - call.started,
            )
            for hook in CONFIG.prediction_hooks:
                try:
                    hook.emit(event)
                except Exception:  # noqa: BLE001 - a hook must never break the caller
                    CONFIG.hook_errors += 1

    def _step(self, method: Callable[[Call], None], mechanism: object, call: Call) -> None:
        try:
            method(call)
        except PolicyError:
            raise
        except Exception as e:  # noqa: BLE001 - machinery never breaks the call
            self._machinery_error(str(getattr(mechanism, "name", type(mechanism).__name__)), e)

    def _machinery_error(self, component: str, error: BaseException) -> None:
        next(self._machinery_errors)
        for hook in CONFIG.call_hooks:
            try:
                hook.machinery_error(self.name, component)
            except Exception:  # noqa: BLE001 - nothing more to do
                CONFIG.hook_errors += 1
        emit(
            MachineryError(
                guard=self.name, component=component, error=f"{type(error).__name__}: {error}"
            )
        )

    def _value(self, raw: object) -> Any:
        """The typed value of *raw*, or the out-of-scale policy."""
        try:
            return self.scale(_as_raw(raw))
        except (OutOfScaleError, ScaleError) as e:
            return self._out_of_scale_value(raw, e)

    def _out_of_scale_value(self, raw: object, error: Exception) -> Any:
        next(self._out_of_scale)
        detail = str(error)
        if self._on_out_of_scale == "raise":
            raise PredictionOutOfScaleError(f"{self.name}: {detail}") from error
        emit(OutOfScale(guard=self.name, model=self.model, scale=self.scale.scale, detail=detail))
        value = _new(self.scale)
        _set(value, "value", raw)  # passed through unchecked, as the policy says
        return value

    # -- decorating ---------------------------------------------------------------

    def wrap(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Return *fn* guarded; coroutine functions stay coroutine functions.

        A guard with no mechanisms but (at most) a fixed threshold, while
        nothing records telemetry, skips the per-call context entirely: this
        is where the guard's overhead is decided, once, not on every call.
        """
        if not callable(fn):
            raise ConfigError(f"guard() decorates a function, got {type(fn).__name__}")
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise ConfigError(
                f"{callable_name(fn)} is a generator function; guard() needs a function "
                "that returns its prediction"
            )
        fast, quiet = self._fast, _quiet
        ndarray, take_over = np.ndarray, _take_over
        calls, errors, result = self._calls, self._errors, self._fast_result

        guarded: Callable[P, Any]
        if inspect.iscoroutinefunction(fn):
            run_async = self.run_async

            async def guarded_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                if not (fast and quiet()):
                    return await run_async(fn, *args, **kwargs)
                next(calls)
                try:
                    raw = await fn(*args, **kwargs)
                except BaseException:
                    next(errors)
                    raise
                if type(raw) is ndarray:
                    take_over(raw)
                return result(raw, args)

            guarded = guarded_async
        else:
            run = self.run

            def guarded_sync(*args: P.args, **kwargs: P.kwargs) -> Any:
                if not (fast and quiet()):
                    return run(fn, *args, **kwargs)
                next(calls)
                try:
                    raw = fn(*args, **kwargs)
                except BaseException:
                    next(errors)
                    raise
                if type(raw) is ndarray:
                    take_over(raw)
                return result(raw, args)

            guarded = guarded_sync
        guarded = functools.wraps(fn)(guarded)
        _GUARDS_BY_FUNCTION[guarded] = self
        return guarded

    def _bind_fast_result(self) -> Callable[[object, tuple[Any, ...]], Any]:
        """The prediction (or decision) for *raw*, with the common case inline."""
        config, model, scale, name = CONFIG, self.model, self.scale, self.name
        low, high = _FAST_RANGE[scale.scale]
        slow_value, finish = self._value, self._finish
        new, now, make = _new, _now, _tuple_new
        set_scaled = _VALUE_SETTER[scale.scale]
        prediction_cls, decision_cls = Prediction, Decision
        decides = self._fixed_only
        fixed = self.config.threshold
        cut = fixed.value if decides else 0.0
        at_least = not decides or fixed.direction == ">="
        guard = self

        def fast_result(raw: object, args: tuple[Any, ...]) -> Any:
            if type(raw) is float and low <= raw <= high:
                value = new(scale)
                set_scaled(value, raw)
                p = make(
                    prediction_cls,
                    (value, model, next(config._counter), now(), (), config._id_prefix),
                )
                if not decides:
                    return p
                above = raw >= cut if at_least else raw <= cut
                if above and (guard.killed or config.killed):
                    return decision_cls(p, fixed, above, False, ("kill-switch",))
                return decision_cls(p, fixed, above, above)
            if not decides:
                return make(
                    prediction_cls,
                    (slow_value(raw), model, next(config._counter), now(), (), config._id_prefix),
                )
            inputs = args[0] if args else None
            return finish(Call(name, model, inputs, _batch_size(inputs)), raw)

        return fast_result

    def __repr__(self) -> str:
        return f"<Guard {self.name!r} model={self.model.name} {self.model.version}>"


_getrefcount = getattr(sys, "getrefcount", None)


def _take_over(raw: NDArray[Any]) -> None:
    """Make a result array that nobody else holds read-only, so it needs no copy.

    A typed batch must not change under its prediction, so a value copies any
    array someone else could still write to. The array a predict function
    returns is usually a fresh temporary: when the guard's own variable is its
    only reference (counted: the caller's variable, this argument and
    getrefcount's own), locking it is as safe as a copy and costs nothing.
    """
    if (
        _getrefcount is not None
        and _getrefcount(raw) <= 3
        and raw.base is None
        and raw.flags.writeable
    ):
        raw.flags.writeable = False


def _quiet() -> bool:
    """True when nothing records telemetry, so a call needs no context.

    Decided by one attribute when hooks are off, and by two globals of the
    OpenTelemetry API when only the default (global-provider) hook is on.
    """
    mode = CONFIG.mode
    return mode == OFF or (
        mode == GLOBAL_OTEL
        and _trace_state._TRACER_PROVIDER is None
        and _metrics_state._METER_PROVIDER is None
    )


def _as_raw(raw: object) -> object:
    if isinstance(raw, (list, tuple)):
        try:
            return np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ScaleError(f"a batch must hold numbers: {e}") from e
    return raw


def _neutral(prediction: Prediction[Any]) -> float:
    return 0.5 if prediction.value.scale == "probability" else 0.0


def _none_like(prediction: Prediction[Any]) -> bool | NDArray[np.bool_]:
    raw = prediction.value.value
    if isinstance(raw, np.ndarray) and raw.ndim == 1:
        return np.zeros(raw.shape, dtype=bool)
    return False


def _batch_size(inputs: object) -> int | None:
    """Rows in a batch input (a 2-D array, or a list of rows), None for one row."""
    if isinstance(inputs, np.ndarray):
        return int(inputs.shape[0]) if inputs.ndim == 2 else None
    if isinstance(inputs, (list, tuple)) and (
        not inputs or isinstance(inputs[0], (Mapping, list, tuple, np.ndarray))
    ):
        return len(inputs)
    return None


# -- the registry --------------------------------------------------------------------

_REGISTRY_LOCK = threading.Lock()
_REGISTRY: list[weakref.ref[Guard[Any]]] = []
_GUARDS_BY_FUNCTION: weakref.WeakKeyDictionary[Callable[..., Any], Guard[Any]] = (
    weakref.WeakKeyDictionary()
)


def _register(g: Guard[Any]) -> None:
    with _REGISTRY_LOCK:
        _REGISTRY[:] = [r for r in _REGISTRY if r() is not None]
        _REGISTRY.append(weakref.ref(g))


def registry() -> tuple[GuardStats, ...]:
    """Every live guard in this process, as snapshots (name, model, counters)."""
    with _REGISTRY_LOCK:
        guards = [g for r in _REGISTRY if (g := r()) is not None]
    return tuple(g.stats() for g in guards)


def guard_of(fn: Callable[..., Any]) -> Guard[Any]:
    """The :class:`Guard` behind a function decorated with :func:`guard`."""
    try:
        return _GUARDS_BY_FUNCTION[fn]
    except (KeyError, TypeError):
        raise ConfigError(f"{callable_name(fn)} is not a guarded function") from None


def kill_all(reason: str = "") -> None:
    """The global kill switch: no guard allows an action until :func:`revive_all`."""
    CONFIG.killed, CONFIG.kill_reason = True, reason
    emit(KillSwitchChanged(guard=None, killed=True, reason=reason))


def revive_all() -> None:
    """Undo :func:`kill_all` (guards killed one by one stay killed)."""
    CONFIG.killed, CONFIG.kill_reason = False, ""
    emit(KillSwitchChanged(guard=None, killed=False, reason=""))


# -- the decorator ---------------------------------------------------------------------


class _Decorator(Generic[O]):
    """What ``guard(...)`` returns: apply it to a sync or async predict function."""

    __slots__ = ("_config",)

    def __init__(self, config: GuardConfig) -> None:
        self._config = config

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, Raw]]
    ) -> Callable[P, Coroutine[Any, Any, O]]: ...

    @overload
    def __call__(self, fn: Callable[P, Raw]) -> Callable[P, O]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        config = self._config
        if config.name is None:
            config = attrs.evolve(config, name=callable_name(fn))
        return Guard[Any](config).wrap(fn)


@overload
def guard(
    *,
    model: ModelRef,
    returns: type[S],
    threshold: None = None,
    name: str | None = None,
    inputs: object = None,
    holdout: None = None,
    limits: Sequence[object] = (),
    outcomes: object = None,
    on_out_of_scale: OutOfScalePolicy = "raise",
) -> _Decorator[Prediction[S]]: ...


@overload
def guard(
    *,
    model: ModelRef,
    returns: type[S],
    threshold: Threshold[S] | Mechanism,
    name: str | None = None,
    inputs: object = None,
    holdout: object = None,
    limits: Sequence[object] = (),
    outcomes: object = None,
    on_out_of_scale: OutOfScalePolicy = "raise",
) -> _Decorator[Decision[S]]: ...


def guard(
    *,
    model: ModelRef,
    returns: type[S],
    threshold: object = None,
    name: str | None = None,
    inputs: object = None,
    holdout: object = None,
    limits: Sequence[object] = (),
    outcomes: object = None,
    on_out_of_scale: OutOfScalePolicy = "raise",
) -> _Decorator[Any]:
    """Guard a predict function: typed predictions with provenance, and guardrails.

    The predict function scores one row (and returns a number) or a batch
    (and returns a 1-D array or a list); it may be ``async def``. The guarded
    function keeps its parameters and returns a :class:`Prediction`, or a
    :class:`Decision` when a *threshold* is given. Its own exceptions
    propagate unchanged; the guard's machinery failing never does.

    Args:
        model: The model whose predictions these are.
        returns: The output's scale: ``gr.Probability``, ``gr.LogOdds`` or
            ``gr.Score``.
        threshold: A :class:`Threshold` (fixed) or a dynamic threshold.
        name: The guard's name; the function's qualified name by default.
        inputs: An input monitor (e.g. ``gr.SkewMonitor``).
        holdout: A randomized holdout (needs a threshold).
        limits: Action limits (need a threshold).
        outcomes: An outcome monitor.
        on_out_of_scale: ``"raise"`` or ``"record"``; see :class:`GuardConfig`.

    >>> import guardrail as gr
    >>> model = gr.ModelRef(name="fraud", version="3.1.0")
    >>> @gr.guard(model=model, returns=gr.Probability)
    ... def predict(row: dict[str, float]) -> float:
    ...     return 0.25
    >>> predict({"amount": 12.0}).value
    Probability(0.25)
    """
    config = GuardConfig(
        model=model,
        returns=returns,
        name=name,
        inputs=inputs,
        threshold=threshold,
        holdout=holdout,
        limits=tuple(limits),
        outcomes=outcomes,
        on_out_of_scale=on_out_of_scale,
    )
    return _Decorator(config)
