"""The guard: composes the mechanisms around one call of a predict function."""

from __future__ import annotations

import functools
import inspect
import math
import os
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, ParamSpec, TypeVar, cast, overload

import attrs
import numpy as np

from ._call import (
    Assigner,
    AsyncLimiter,
    Call,
    Decider,
    InputMonitor,
    Limiter,
    Recorder,
    Source,
    attach,
    check_free,
)
from ._config import CONFIG, GLOBAL_OTEL, OFF, UNRESOLVED
from ._errors import (
    ConfigError,
    OutOfScaleError,
    PolicyError,
    PredictionOutOfScaleError,
    ScaleError,
)
from ._events import MachineryError, OutOfScale, PauseChanged, PredictionMade
from ._guard_config import GuardConfig, OutOfScalePolicy
from ._hooks import emit
from ._inputs import MISSING, InputBinding, Inputs, bind_inputs
from ._model import ModelRef, callable_name
from ._otel import sdk_configured
from ._prediction import Decision, Prediction, Threshold
from ._scales import SCALES, ScaleValue
from ._speed import Counter, batch_check, take_over

if TYPE_CHECKING:
    from typing import TypeAlias

    from numpy.typing import NDArray

    from ._otel import CallScope

    #: What a predict function may return: one number, or a batch of them.
    Raw: TypeAlias = float | np.floating[Any] | NDArray[Any] | Sequence[float]

__all__ = [
    "Guard",
    "GuardStats",
    "guard",
    "guard_of",
    "pause_all",
    "registry",
    "resume_all",
]

P = ParamSpec("P")
S = TypeVar("S", bound=ScaleValue[Any])
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


@attrs.frozen
class GuardStats:
    """A snapshot of one guard: identity, state and counters."""

    name: str
    model: ModelRef
    config_fingerprint: str
    paused: bool
    pause_reason: str
    calls: int
    errors: int
    machinery_errors: int
    out_of_scale: int


class _FixedThreshold:
    """A fixed Threshold as a decider."""

    kind: ClassVar[str] = "threshold"
    __slots__ = ("name", "source", "threshold")

    def __init__(self, threshold: Threshold[Any]) -> None:
        self.name = "threshold"
        self.threshold = threshold
        self.source = Source("threshold", "threshold")

    def decide_call(self, call: Call) -> None:
        threshold = self.threshold
        assert call.prediction is not None
        call.decide(threshold, threshold.admits(call.prediction.value))


_PROCESS = Source("process", "guardrail")
_NO_INPUTS = Inputs(None, "row", None)
_TELEMETRY = Source("telemetry", "hooks")


class Guard(Generic[S]):
    """The object beneath :func:`guard`: a predict function's guardrails.

    Use it directly where a decorator does not fit::

        g = gr.Guard(gr.GuardConfig(model=model, returns=gr.Probability, name="fraud"))
        prediction = g.run(clf_score, row)

    Calls are thread-safe. The guard registers itself (see :func:`registry`)
    and has a kill switch (:meth:`pause`): while paused, predictions are still
    returned but no action is taken (``Decision.act`` is False with reason
    ``"paused"``).
    """

    def __init__(self, config: GuardConfig) -> None:
        if not isinstance(config, GuardConfig):
            raise ConfigError(f"Guard takes a GuardConfig, got {type(config).__name__}")
        self.config = config
        self.name = config.name or config.model.name
        self.model = config.model
        self.scale = config.returns
        self.fingerprint = config.fingerprint
        self.source = Source("guard", self.name, self.name, self.model)
        self._on_out_of_scale: OutOfScalePolicy = config.on_out_of_scale
        parts = [
            part
            for _, mechanism in config.mechanisms()
            if not isinstance(mechanism, Threshold)
            for part in (mechanism, *getattr(mechanism, "parts", ()))
        ]
        for part in parts:  # every one first: a refused guard takes none of them
            check_free(part, self)
        for part in parts:
            attach(part, Source(type(part).kind, part.name, self.name, self.model), self)
        decider: Decider | None
        if isinstance(config.threshold, Threshold):
            fixed = _FixedThreshold(config.threshold)
            attach(fixed, Source("threshold", "threshold", self.name, self.model), self)
            decider = fixed
        else:
            decider = config.threshold
        self._decider = decider
        self._decides = decider is not None
        self._monitors: tuple[InputMonitor, ...] = () if config.inputs is None else (config.inputs,)
        self._assigner: Assigner | None = config.holdout
        self._limits: tuple[Limiter, ...] = config.limits
        # Which limiters an async call awaits: chosen once, not per call.
        self._async_limits = tuple(
            (limit, isinstance(limit, AsyncLimiter)) for limit in config.limits
        )
        self._recorders: tuple[Recorder, ...] = config.outcomes
        self._names = config.features
        if self._names is None and config.inputs is not None:
            schema = getattr(config.inputs, "schema", None)
            self._names = getattr(schema, "names", None)
        self._plain = not (self._monitors or self._decides or self._recorders)
        self._fixed_only = (
            isinstance(config.threshold, Threshold)
            and not (self._monitors or self._recorders or self._limits)
            and config.holdout is None
        )
        self._fast = self._plain or self._fixed_only
        self._calls = Counter()
        self._errors = Counter()
        self._machinery_errors = Counter()
        self._out_of_scale = Counter()
        self._monitor_steps = tuple((m.observe_call, m.source) for m in self._monitors)
        self._recorder_steps = tuple((r.record_call, r.source) for r in self._recorders)
        self._range = _FAST_RANGE[self.scale.scale]
        self._set_scaled = _VALUE_SETTER[self.scale.scale]
        self._bindings: dict[Callable[..., Any], InputBinding] = {}
        self._fast_result = self._bind_fast_result()
        self._run_quiet = self._bind_run_quiet()
        self.paused = False
        self.pause_reason = ""
        _register(self)

    # -- the kill switch --------------------------------------------------------

    def pause(self, reason: str = "") -> None:
        """Stop all actions of this guard (the kill switch); predictions are still returned."""
        self.paused, self.pause_reason = True, reason
        emit(PauseChanged(source=self.source, paused=True, reason=reason))

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        self.paused, self.pause_reason = False, ""
        emit(PauseChanged(source=self.source, paused=False, reason=""))

    def stats(self) -> GuardStats:
        """A snapshot of this guard's state and counters."""
        return GuardStats(
            name=self.name,
            model=self.model,
            config_fingerprint=self.fingerprint,
            paused=self.paused or CONFIG.paused,
            pause_reason=self.pause_reason or CONFIG.pause_reason,
            calls=self._calls.value(),
            errors=self._errors.value(),
            machinery_errors=self._machinery_errors.value(),
            out_of_scale=self._out_of_scale.value(),
        )

    def _binding(self, fn: Callable[..., Any]) -> InputBinding:
        binding = self._bindings.get(fn)
        if binding is None:
            binding = bind_inputs(fn, self.config.input_parameter)
            if len(self._bindings) < 64:
                self._bindings[fn] = binding
        return binding

    # -- running a call -----------------------------------------------------------

    def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)`` under this guard."""
        return self._run(self._binding(fn), fn, args, kwargs)

    async def run_async(
        self, fn: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any
    ) -> Any:
        """Await ``fn(*args, **kwargs)`` under this guard."""
        return await self._run_async(self._binding(fn), fn, args, kwargs)

    def _run(
        self,
        binding: InputBinding,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if _quiet():
            if not self._fast:
                return self._run_quiet(binding, fn, args, kwargs)
            self._calls.add()
            try:
                raw = fn(*args, **kwargs)
            except BaseException:
                self._errors.add()
                raise
            if type(raw) is np.ndarray:
                take_over(raw)
            return self._fast_result(raw, binding, args, kwargs)
        self._calls.add()
        call, scopes = self._enter(binding, args, kwargs)
        error: BaseException | None = None
        try:
            self._observe(call)
            try:
                raw = fn(*args, **kwargs)
            except BaseException:
                self._errors.add()
                raise
            if type(raw) is np.ndarray:
                take_over(raw)
            return self._finish(call, raw)
        except BaseException as e:
            error = e
            raise
        finally:
            self._exit(call, scopes, error)

    async def _run_async(
        self,
        binding: InputBinding,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        self._calls.add()
        call, scopes = self._enter(binding, args, kwargs)
        error: BaseException | None = None
        try:
            self._observe(call)
            try:
                raw = await fn(*args, **kwargs)
            except BaseException:
                self._errors.add()
                raise
            if type(raw) is np.ndarray:
                take_over(raw)
            return await self._finish_async(call, raw)
        except BaseException as e:
            error = e
            raise
        finally:
            self._exit(call, scopes, error)

    def _inputs(
        self, binding: InputBinding, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Inputs:
        raw = binding(args, kwargs)
        return Inputs.of(None if raw is MISSING else raw, self._names)

    def _enter(
        self, binding: InputBinding, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Call, list[tuple[Any, CallScope | None]]]:
        """Read the inputs; open the call's telemetry scopes (never raises)."""
        if CONFIG.mode == UNRESOLVED:
            _ = CONFIG.hooks  # choose the default hooks now
        try:
            inputs = self._inputs(binding, args, kwargs)
        except Exception as e:  # noqa: BLE001 - unreadable inputs are the caller's, not ours
            self._machinery_error(self.source, e)
            inputs = Inputs(None, "row", None)
        call = Call(self.name, self.model, inputs, started=_perf())
        scopes: list[tuple[Any, CallScope | None]] = []
        for hook in CONFIG.call_hooks:
            try:
                scopes.append((hook, hook.start_call(self.name, self.fingerprint)))
            except Exception as e:  # noqa: BLE001 - telemetry must not break the call
                self._machinery_error(_TELEMETRY, e)
        return call, scopes

    def _observe(self, call: Call) -> None:
        for observe, source in self._monitor_steps:
            try:
                observe(call)
            except PolicyError:
                raise
            except Exception as e:  # noqa: BLE001 - machinery never breaks the call
                self._machinery_error(source, e)

    def _bind_begin_quiet(
        self,
    ) -> Callable[[InputBinding, tuple[Any, ...], dict[str, Any]], Call]:
        """The start of a quiet call: count it, read its inputs, run the input monitors."""
        count_call = self._calls.add
        names, name, model = self._names, self.name, self.model
        read, observe = Inputs.of, self._observe
        monitors = bool(self._monitor_steps)
        missing, new_call = MISSING, Call

        def begin(binding: InputBinding, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
            count_call()
            given = binding(args, kwargs)
            try:
                inputs = read(None if given is missing else given, names)
            except Exception:  # noqa: BLE001 - unreadable inputs: the slow path reports them
                inputs = Inputs(None, "row", None)
            call = new_call(name, model, inputs)
            if monitors:
                observe(call)
            return call

        return begin

    def _bind_run_quiet(
        self,
    ) -> Callable[[InputBinding, Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]:
        """The whole call path while nothing records telemetry, composed once.

        No telemetry scope, no timing and no per-step wrapper: the cost of a
        call is the guard's bookkeeping plus each mechanism's own work.
        """
        begin, count_error = self._bind_begin_quiet(), self._errors.add
        finish = self._bind_finish_quiet()
        ndarray = np.ndarray

        def run_quiet(
            binding: InputBinding,
            fn: Callable[..., Any],
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            call = begin(binding, args, kwargs)
            try:
                raw = fn(*args, **kwargs)
            except BaseException:
                count_error()
                raise
            if type(raw) is ndarray:
                take_over(raw)
            return finish(call, raw)

        return run_quiet

    def _bind_run_quiet_async(
        self,
    ) -> Callable[
        [InputBinding, Callable[..., Awaitable[Any]], tuple[Any, ...], dict[str, Any]],
        Awaitable[Any],
    ]:
        """:meth:`_bind_run_quiet` for coroutine functions."""
        begin, count_error = self._bind_begin_quiet(), self._errors.add
        finish = self._finish_async
        ndarray = np.ndarray

        async def run_quiet_async(
            binding: InputBinding,
            fn: Callable[..., Awaitable[Any]],
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            call = begin(binding, args, kwargs)
            try:
                raw = await fn(*args, **kwargs)
            except BaseException:
                count_error()
                raise
            if type(raw) is ndarray:
                take_over(raw)
            return await finish(call, raw)

        return run_quiet_async

    def _bind_finish_quiet(self) -> Callable[[Call, object], Any]:
        """:meth:`_finish` composed once for this guard's mechanisms (the sync quiet path).

        The common case runs inline, each step a local: one float on its
        scale, the decider, the assigner, the kill switch, the limits and the
        recorders, and the decision built as its record. Anything rarer (a
        batch, a value off its scale) takes :meth:`_finish`.
        """
        general, config, model, scale = self._finish, CONFIG, self.model, self.scale
        low, high = self._range
        set_scaled = self._set_scaled
        new, make, now = _new, _tuple_new, _now
        prediction_cls, decision_cls = Prediction, Decision
        decider, assigner = self._decider, self._assigner
        limits, acquire = bool(self._limits), self._acquire
        # One limit: nothing after it can veto, so no receipt is kept (see _acquire).
        only_limit = self._limits[0] if len(self._limits) == 1 else None
        acquire_only = None if only_limit is None else only_limit.acquire_call
        recorders, record = bool(self._recorder_steps), self._record
        machinery_error = self._machinery_error
        fallback = self._fallback_threshold
        guard = self

        if decider is None:

            def finish_prediction(call: Call, raw: object) -> Any:
                if type(raw) is not float or not low <= raw <= high:
                    return general(call, raw)
                value = new(scale)
                set_scaled(value, raw)
                prediction = make(
                    prediction_cls, (value, model, next(config.ids), now(), (), config.id_prefix)
                )
                call.prediction = prediction
                if call.inputs.batch_size is not None:
                    call.inputs = call.inputs.matching(None)
                call.close_vetoes()
                if recorders:
                    record(call)
                return prediction

            return finish_prediction

        decide, decider_source = decider.decide_call, decider.source
        assign = None if assigner is None else assigner.assign_call
        assigner_source = None if assigner is None else assigner.source
        # A fixed threshold is one comparison of the float: made here, inline.
        fixed = decider.threshold if isinstance(decider, _FixedThreshold) else None
        cut = 0.0 if fixed is None else fixed.value
        at_least = fixed is None or fixed.direction == ">="

        def finish_decision(call: Call, raw: object) -> Any:
            if type(raw) is not float or not low <= raw <= high:
                return general(call, raw)
            value = new(scale)
            set_scaled(value, raw)
            prediction = make(
                prediction_cls, (value, model, next(config.ids), now(), (), config.id_prefix)
            )
            call.prediction = prediction
            if call.inputs.batch_size is not None:
                call.inputs = call.inputs.matching(None)
            if fixed is not None:
                call.decide(fixed, raw >= cut if at_least else raw <= cut)
            else:
                try:
                    decide(call)
                except PolicyError:
                    raise
                except Exception as e:  # noqa: BLE001 - machinery never breaks the call
                    machinery_error(decider_source, e)
            if call.threshold is None:
                # The decider failed: no basis for an action (see _finish).
                call.close_decision()
                call.threshold = fallback(prediction)
                call.above = False
                call.degraded = True
            elif assign is not None:
                try:
                    assign(call)
                except PolicyError:
                    raise
                except Exception as e:  # noqa: BLE001 - machinery never breaks the call
                    machinery_error(cast(Source, assigner_source), e)
                    call.degraded = True
            call.close_decision()
            if guard.paused or config.paused:
                call.veto("paused")
            if acquire_only is not None:
                try:
                    acquire_only(call)
                except PolicyError:
                    raise
                except Exception as e:  # noqa: BLE001 - machinery never breaks the call
                    machinery_error(cast(Limiter, only_limit).source, e)
            elif limits:
                acquire(call)
            call.close_vetoes()
            act, above = call.act, call.above
            decision = make(
                decision_cls,
                (
                    prediction,
                    call.threshold,
                    False if above is None else above,
                    False if act is None else act,
                    tuple(call.reasons),
                    call.arm,
                    call.propensity,
                    call.degraded,
                    call.intended,
                ),
            )
            if recorders:
                record(call)
            return decision

        return finish_decision

    def _fallback_threshold(self, prediction: Prediction[Any]) -> Threshold[Any]:
        """The threshold a decision reports when no decider could give one."""
        fixed = self.config.threshold
        if isinstance(fixed, Threshold):
            return fixed
        return Threshold(_neutral(prediction), scale=self.scale, model=self.model)

    def _finish(self, call: Call, raw: object) -> Any:
        prediction = self._decide(call, raw)
        if prediction is not None:
            return prediction
        if self._limits:
            self._acquire(call)
        return self._conclude(call)

    async def _finish_async(self, call: Call, raw: object) -> Any:
        """:meth:`_finish` with the limiters awaited (see :meth:`_acquire_async`)."""
        prediction = self._decide(call, raw)
        if prediction is not None:
            return prediction
        if self._limits:
            await self._acquire_async(call)
        return self._conclude(call)

    def _decide(self, call: Call, raw: object) -> Prediction[Any] | None:
        """Type the value and decide; the prediction when there is nothing to decide."""
        scale = self.scale
        low, high = self._range
        if type(raw) is float and low <= raw <= high:
            value = _new(scale)
            self._set_scaled(value, raw)
            on_scale = True
        else:
            try:
                value = scale(_as_raw(raw))
                on_scale = True
            except (OutOfScaleError, ScaleError) as e:
                value = self._out_of_scale_value(raw, e)
                on_scale = False
        config = CONFIG
        prediction = _tuple_new(
            Prediction, (value, self.model, next(config.ids), _now(), (), config.id_prefix)
        )
        call.prediction = prediction
        scored = value.value
        size = None if type(scored) is float else len(scored) if type(scored) is np.ndarray else -1
        if size != call.inputs.batch_size and size != -1:
            call.inputs = call.inputs.matching(size)
        if not self._decides:
            call.close_vetoes()
            if self._recorder_steps:
                self._record(call)
            return prediction
        if on_scale:
            decider = self._decider
            assert decider is not None
            try:
                decider.decide_call(call)
            except PolicyError:
                raise
            except Exception as e:  # noqa: BLE001 - machinery never breaks the call
                self._machinery_error(decider.source, e)
            assigner = self._assigner
            if assigner is not None and call.threshold is not None:
                try:
                    assigner.assign_call(call)
                except PolicyError:
                    raise
                except Exception as e:  # noqa: BLE001 - machinery never breaks the call
                    self._machinery_error(assigner.source, e)
                    call.degraded = True
        if call.threshold is None:
            # No basis for an action: the value is off its scale, or the
            # decider failed (then the decision is marked degraded).
            fixed = self.config.threshold
            call.close_decision()
            call.threshold = (
                fixed
                if isinstance(fixed, Threshold)
                else Threshold(_neutral(prediction), scale=self.scale, model=self.model)
            )
            call.above = _none_like(prediction)
            call.degraded = call.degraded or on_scale
        call.close_decision()
        if not on_scale:
            call.reasons.append("out-of-scale")
        if self.paused or config.paused:
            call.veto("paused")
        return None

    def _conclude(self, call: Call) -> Decision[Any]:
        """Close the vetoes, fix the decision and record it."""
        call.close_vetoes()
        prediction, threshold = call.prediction, call.threshold
        assert prediction is not None
        assert threshold is not None
        act = call.act
        above = call.above
        # The decision is fixed before the recorders write it down.
        decision = Decision(
            prediction,
            threshold,
            above if above is not None else False,
            act if act is not None else _none_like(prediction),
            tuple(call.reasons),
            arm=call.arm,
            intended=call.intended,
            propensity=call.propensity,
            degraded=call.degraded,
        )
        if self._recorder_steps:
            self._record(call)
        return decision

    def _record(self, call: Call) -> None:
        # Recorders write down a final decision: nothing they raise, a
        # PolicyError included, may undo it after the limits counted it.
        for record, source in self._recorder_steps:
            try:
                record(call)
            except Exception as e:  # noqa: BLE001 - machinery never breaks the call
                self._machinery_error(source, e)

    def _acquire(self, call: Call) -> None:
        """Run the limiters in order; give back what was counted but not acted on.

        An action a later limit denies is not taken, so the budget earlier
        limits counted for it is refunded; when a limit raises (a policy such
        as ``on_exceed="raise"``), no action of the call is taken and every
        count it made is refunded.
        """
        if len(self._limits) == 1:
            # Nothing after the only limit can veto: its receipt is never needed.
            limit = self._limits[0]
            try:
                limit.acquire_call(call)
            except PolicyError:
                raise
            except Exception as e:  # noqa: BLE001 - machinery never breaks the call
                self._machinery_error(limit.source, e)
            return
        #: (limit, receipt, vetoes recorded when it counted) for each counting limit.
        receipts: list[tuple[Limiter, object, int]] = []
        reasons = call.reasons
        try:
            for limit in self._limits:
                try:
                    receipt = limit.acquire_call(call)
                except PolicyError:
                    raise
                except Exception as e:  # noqa: BLE001 - machinery never breaks the call
                    self._machinery_error(limit.source, e)
                    continue
                if receipt is not None:
                    receipts.append((limit, receipt, len(reasons)))
        except BaseException:
            for limit, receipt, _ in receipts:
                self._refund(limit, receipt, None)
            raise
        if receipts:
            act = call.act
            vetoes = len(reasons)
            for limit, receipt, seen in receipts:
                # Nothing vetoed after this limit counted: nothing to give back.
                if seen != vetoes:
                    self._refund(limit, receipt, act)

    def _refund(self, limit: Limiter, receipt: object, act: Any) -> None:
        try:
            limit.refund_call(receipt, act)
        except Exception as e:  # noqa: BLE001 - a lost refund only overcounts
            self._machinery_error(limit.source, e)

    async def _acquire_async(self, call: Call) -> None:
        """:meth:`_acquire` for an async call: an :class:`AsyncLimiter` is awaited.

        A limiter without the async methods is called as in a sync call.
        When the call is cancelled while a limiter waits, what earlier
        limiters counted is given back, as when a limiter raises.
        """
        receipts: list[tuple[Limiter, object, int]] = []
        reasons = call.reasons
        try:
            for limit, awaited in self._async_limits:
                try:
                    if awaited:
                        receipt = await cast(AsyncLimiter, limit).acquire_call_async(call)
                    else:
                        receipt = limit.acquire_call(call)
                except PolicyError:
                    raise
                except Exception as e:  # noqa: BLE001 - machinery never breaks the call
                    self._machinery_error(limit.source, e)
                    continue
                if receipt is not None:
                    receipts.append((limit, receipt, len(reasons)))
        except BaseException:
            for limit, receipt, _ in receipts:
                await self._refund_async(limit, receipt, None)
            raise
        if receipts:
            act = call.act
            vetoes = len(reasons)
            for limit, receipt, seen in receipts:
                if seen != vetoes:
                    await self._refund_async(limit, receipt, act)

    async def _refund_async(self, limit: Limiter, receipt: object, act: Any) -> None:
        try:
            if isinstance(limit, AsyncLimiter):
                await limit.refund_call_async(receipt, act)
            else:
                limit.refund_call(receipt, act)
        except Exception as e:  # noqa: BLE001 - a lost refund only overcounts
            self._machinery_error(limit.source, e)

    def _exit(
        self,
        call: Call,
        scopes: list[tuple[Any, CallScope | None]],
        error: BaseException | None,
    ) -> None:
        paused = self.paused or CONFIG.paused
        for hook, scope in reversed(scopes):
            try:
                hook.end_call(scope, call, error, paused)
            except Exception as e:  # noqa: BLE001 - telemetry must not break the call
                self._machinery_error(_TELEMETRY, e)
        if error is None and call.prediction is not None and CONFIG.prediction_hooks:
            value = call.prediction.value.value
            event = PredictionMade(
                source=self.source,
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

    def _step(self, method: Callable[[Call], Any], source: Source, call: Call) -> None:
        try:
            method(call)
        except PolicyError:
            raise
        except Exception as e:  # noqa: BLE001 - machinery never breaks the call
            self._machinery_error(source, e)

    def _machinery_error(self, source: Source, error: BaseException) -> None:
        self._machinery_errors.add()
        if source.guard is None:
            source = attrs.evolve(source, guard=self.name, model=self.model)
        for hook in CONFIG.call_hooks:
            try:
                hook.machinery_error(self.name, f"{source.kind}:{source.name}")
            except Exception:  # noqa: BLE001 - nothing more to do
                CONFIG.hook_errors += 1
        # Only the exception's type: its message may hold raw input values.
        emit(MachineryError(source=source, error=type(error).__name__))

    def _value(self, raw: object) -> Any:
        """The typed value of *raw*, or the out-of-scale policy."""
        try:
            return self.scale(_as_raw(raw))
        except (OutOfScaleError, ScaleError) as e:
            return self._out_of_scale_value(raw, e)

    def _out_of_scale_value(self, raw: object, error: Exception) -> Any:
        self._out_of_scale.add()
        detail = str(error)
        if self._on_out_of_scale == "raise":
            raise PredictionOutOfScaleError(f"{self.name}: {detail}") from error
        emit(OutOfScale(source=self.source, scale=self.scale.scale, detail=detail))
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
        binding = bind_inputs(fn, self.config.input_parameter)
        fast, quiet = self._fast, _quiet
        ndarray = np.ndarray
        count_call, count_error = self._calls.add, self._errors.add
        result = self._fast_result

        guarded: Callable[P, Any]
        if inspect.iscoroutinefunction(fn) or (
            not inspect.isfunction(fn)
            and not inspect.ismethod(fn)
            and inspect.iscoroutinefunction(type(fn).__call__)
        ):
            run_async = self._run_async
            run_quiet_async = self._bind_run_quiet_async()

            async def guarded_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                if not quiet():
                    return await run_async(binding, fn, args, kwargs)
                if not fast:
                    return await run_quiet_async(binding, fn, args, kwargs)
                count_call()
                try:
                    raw = await fn(*args, **kwargs)
                except BaseException:
                    count_error()
                    raise
                if type(raw) is ndarray:
                    take_over(raw)
                return result(raw, binding, args, kwargs)

            guarded = guarded_async
        else:
            run = self._run

            run_quiet = self._run_quiet

            def guarded_sync(*args: P.args, **kwargs: P.kwargs) -> Any:
                if not quiet():
                    return run(binding, fn, args, kwargs)
                if not fast:
                    return run_quiet(binding, fn, args, kwargs)
                count_call()
                try:
                    raw = fn(*args, **kwargs)
                except BaseException:
                    count_error()
                    raise
                if type(raw) is ndarray:
                    take_over(raw)
                return result(raw, binding, args, kwargs)

            guarded = guarded_sync
        guarded = functools.wraps(fn)(guarded)
        _GUARDS_BY_FUNCTION[guarded] = self
        return guarded

    def _bind_fast_result(
        self,
    ) -> Callable[[object, InputBinding, tuple[Any, ...], dict[str, Any]], Any]:
        """The prediction (or decision) for *raw*, with the common case inline."""
        config, model, scale, name = CONFIG, self.model, self.scale, self.name
        low, high = _FAST_RANGE[scale.scale]
        slow_value, finish = self._value, self._finish
        new, now, make = _new, _now, _tuple_new
        set_scaled = _VALUE_SETTER[scale.scale]
        batch_ok = batch_check(scale.scale)
        prediction_cls, decision_cls = Prediction, Decision
        decides = self._fixed_only
        given = self.config.threshold
        fixed = cast("Threshold[Any]", given)  # only read when decides
        cut = given.value if isinstance(given, Threshold) else 0.0
        at_least = not isinstance(given, Threshold) or given.direction == ">="
        guard = self

        def fast_result(
            raw: object, binding: InputBinding, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            if type(raw) is float and low <= raw <= high:
                value = new(scale)
                set_scaled(value, raw)
                p = make(
                    prediction_cls,
                    (value, model, next(config.ids), now(), (), config.id_prefix),
                )
                if not decides:
                    return p
                above = raw >= cut if at_least else raw <= cut
                if above and (guard.paused or config.paused):
                    return decision_cls(p, fixed, above, False, ("paused",))
                return decision_cls(p, fixed, above, above)
            if not decides:
                if batch_ok(raw):
                    value = new(scale)
                    set_scaled(value, raw)
                else:
                    value = slow_value(raw)
                return make(
                    prediction_cls, (value, model, next(config.ids), now(), (), config.id_prefix)
                )
            # Only a fixed threshold: nothing reads the inputs.
            return finish(Call(name, model, _NO_INPUTS), raw)

        return fast_result

    def __repr__(self) -> str:
        return f"<Guard {self.name!r} model={self.model.name} {self.model.version}>"


def _quiet() -> bool:
    """True when nothing records telemetry, so a call needs no context.

    Decided by one attribute when hooks are off, and by whether an
    OpenTelemetry SDK is set when only hooks that need one are on.
    """
    mode = CONFIG.mode
    return mode == OFF or (mode == GLOBAL_OTEL and not sdk_configured())


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


# -- the registry --------------------------------------------------------------------

_REGISTRY_LOCK = threading.Lock()


def _fresh_registry_lock() -> None:
    # A thread of the parent may have held it at the fork: the child starts anew.
    global _REGISTRY_LOCK
    _REGISTRY_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_fresh_registry_lock)
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


def pause_all(reason: str = "") -> None:
    """The global kill switch: no guard allows an action until :func:`resume_all`."""
    CONFIG.paused, CONFIG.pause_reason = True, reason
    emit(PauseChanged(source=_PROCESS, paused=True, reason=reason))


def resume_all() -> None:
    """Undo :func:`pause_all` (guards paused one by one stay paused)."""
    CONFIG.paused, CONFIG.pause_reason = False, ""
    emit(PauseChanged(source=_PROCESS, paused=False, reason=""))


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
    inputs: InputMonitor | None = None,
    holdout: None = None,
    limits: tuple[()] = (),
    outcomes: Recorder | Sequence[Recorder] = (),
    features: tuple[str, ...] | list[str] | None = None,
    input_parameter: str | None = None,
    on_out_of_scale: OutOfScalePolicy = "raise",
) -> _Decorator[Prediction[S]]: ...


@overload
def guard(
    *,
    model: ModelRef,
    returns: type[S],
    threshold: Threshold[S] | Decider,
    name: str | None = None,
    inputs: InputMonitor | None = None,
    holdout: Assigner | None = None,
    limits: Sequence[Limiter] = (),
    outcomes: Recorder | Sequence[Recorder] = (),
    features: tuple[str, ...] | list[str] | None = None,
    input_parameter: str | None = None,
    on_out_of_scale: OutOfScalePolicy = "raise",
) -> _Decorator[Decision[S]]: ...


def guard(
    *,
    model: ModelRef,
    returns: type[S],
    threshold: Threshold[S] | Decider | None = None,
    name: str | None = None,
    inputs: InputMonitor | None = None,
    holdout: Assigner | None = None,
    limits: Sequence[Limiter] = (),
    outcomes: Recorder | Sequence[Recorder] = (),
    features: tuple[str, ...] | list[str] | None = None,
    input_parameter: str | None = None,
    on_out_of_scale: OutOfScalePolicy = "raise",
) -> _Decorator[Any]:
    """Guard a predict function: typed predictions with provenance, and guardrails.

    The predict function scores one row (and returns a number) or a batch
    (and returns a 1-D array or a list); it may be ``async def``. The guarded
    function keeps its parameters and returns a :class:`Prediction`, or a
    :class:`Decision` when a *threshold* is given. Its own exceptions
    propagate unchanged; the guard's machinery failing never does.

    Each mechanism slot takes one role (see :mod:`guardrail.mechanisms`): a
    mechanism in the wrong slot is a type error and a ``ConfigError``.

    Args:
        model: The model whose predictions these are.
        returns: The output's scale: ``gr.Probability``, ``gr.LogOdds`` or
            ``gr.Score``.
        threshold: A :class:`Threshold` (fixed) or a decider such as
            ``DynamicThreshold``.
        name: The guard's name; the function's qualified name by default.
        inputs: An input monitor (e.g. ``SkewMonitor``).
        holdout: A randomized holdout (needs a threshold).
        limits: Action limits (need a threshold).
        outcomes: Recorders: an outcome monitor, a decision log, or several.
        features: Names of positional input columns (2-D arrays, rows of
            values); by default the input monitor's reference features.
        input_parameter: The parameter holding the inputs; by default the
            first one after ``self``/``cls``. Keyword calls work either way.
        on_out_of_scale: ``"raise"`` or ``"report"``; see :class:`GuardConfig`.

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
        features=features,
        input_parameter=input_parameter,
        on_out_of_scale=on_out_of_scale,
    )
    return _Decorator(config)
