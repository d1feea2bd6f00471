"""One guarded call, and the roles the mechanisms of a guard play in it.

A guard runs its mechanisms in a fixed order around the predict function::

    input monitors (skew)            observe_call(call)   sees call.inputs
    predict
    decider (threshold)              decide_call(call)    sets the action
    assigner (holdout)               assign_call(call)    may set the arm's action
    -- from here on the action can only be vetoed --
    kill switch
    limiters (action limits)         acquire_call(call)   veto what is over the cap
                                     refund_call(...)     give back what was not acted on
                                     (an async guard awaits acquire_call_async and
                                     refund_call_async of an AsyncLimiter instead)
    recorders (outcomes, log)        record_call(call)    write down what happened

Each role is a :class:`~typing.Protocol`; a mechanism in the wrong slot is a
type error and a :class:`~guardrail.errors.ConfigError` when decorating.
After the deciding steps a mechanism can only :meth:`Call.veto` the action,
with a reason; nothing re-opens it. A mechanism that raises a
:class:`~guardrail.errors.PolicyError` stops the call (a policy the user
chose); any other exception is machinery failing: the guard counts and
reports it and carries on with the prediction unchanged.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import attrs
import numpy as np

from ._errors import CallStageError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ._inputs import Inputs
    from ._model import ModelRef
    from ._prediction import Prediction, Threshold

__all__ = [
    "Assigner",
    "AsyncLimiter",
    "Call",
    "Decider",
    "InputMonitor",
    "Limiter",
    "Mechanism",
    "Recorder",
    "Source",
    "attach",
    "check_free",
]

#: The call's stages: only while deciding may the action be set.
DECIDING, VETOING, DONE = 0, 1, 2


@attrs.frozen
class Source:
    """Who emitted an event: a mechanism's kind and name, its guard and model.

    ``kind`` is the role's family (``"guard"``, ``"limit"``, ``"skew"``,
    ``"threshold"``, ``"holdout"``, ``"outcomes"``, ``"decision_log"``,
    ``"process"``, ...). ``guard`` and ``model`` are set once the mechanism
    serves a guard; a mechanism used on its own has ``guard=None`` and its own
    model, if it has one.
    """

    kind: str
    name: str
    guard: str | None = None
    model: ModelRef | None = None


class Call:
    """What one guarded call has seen and decided so far.

    Mechanisms read it; they change it only through :meth:`decide` (the
    decider), :meth:`assign` (the assigner), :meth:`veto` and
    :meth:`mark_degraded`.

    Attributes:
        guard: The guard's name.
        model: The guard's model.
        inputs: The call's :class:`~guardrail.mechanisms.Inputs`.
        prediction: Set once the predict function returned.
        threshold: Set by the decider.
        above: Where the prediction passed the threshold.
        reasons: Why actions were vetoed, e.g. ``"limit:block_card"``.
        arm: The holdout arm (``"model"`` or ``"holdout"``), if a holdout is
            configured; a tuple of them for a batch.
        intended: The action the randomized policy chose, before any veto.
        propensity: The probability of the intended action under the
            randomization, if randomized.
        degraded: Whether a mechanism's failure policy decided.
        started: ``time.perf_counter()`` when the call began.
    """

    __slots__ = (
        "_act",
        "_stage",
        "_vetoed",
        "above",
        "arm",
        "degraded",
        "guard",
        "inputs",
        "intended",
        "model",
        "prediction",
        "propensity",
        "reasons",
        "started",
        "threshold",
    )

    guard: str
    model: ModelRef
    inputs: Inputs
    prediction: Prediction[Any] | None
    threshold: Threshold[Any] | None
    above: bool | NDArray[np.bool_] | None
    reasons: list[str]
    arm: str | NDArray[np.str_] | None
    intended: bool | NDArray[np.bool_] | None
    propensity: float | NDArray[np.float64] | None
    degraded: bool
    started: float

    def __init__(self, guard: str, model: ModelRef, inputs: Inputs, started: float = 0.0) -> None:
        self.guard = guard
        self.model = model
        self.inputs = inputs
        self.prediction = None
        self.threshold = None
        self.above = None
        self._act: bool | NDArray[np.bool_] | None = None
        self.reasons = []
        self.arm = None
        self.intended = None
        self.propensity = None
        self.degraded = False
        self.started = started
        self._stage = DECIDING
        self._vetoed: bool | NDArray[np.bool_] = False

    def __repr__(self) -> str:
        return f"<Call {self.guard!r} {self.inputs!r} act={self._act!r} reasons={self.reasons}>"

    @property
    def batch_size(self) -> int | None:
        """``None`` for one row; the number of rows for a batch."""
        return self.inputs.batch_size

    @property
    def act(self) -> bool | NDArray[np.bool_] | None:
        """Where the action will be taken (read-only: see :meth:`veto`).

        ``None`` before a decider ran; a bool for one row, a read-only bool
        array for a batch.
        """
        return self._act

    def decide(self, threshold: Threshold[Any], above: bool | NDArray[np.bool_]) -> None:
        """Set the threshold and the action it implies (the decider's step)."""
        if self._stage != DECIDING:
            raise CallStageError("the action is decided once, before any veto")
        self.threshold = threshold
        self.above = above
        act = above if type(above) is bool else _frozen_flags(above)
        self._act = act if self._vetoed is False else _without(act, self._vetoed)

    def assign(
        self,
        arm: str | NDArray[np.str_],
        intended: bool | NDArray[np.bool_] | None,
        propensity: float | NDArray[np.float64],
        act: bool | NDArray[np.bool_] | None = None,
        reason: str | None = None,
    ) -> None:
        """Set the holdout arm and, where the arm overrides it, the action.

        The assigner's step: it runs right after the decider, before any veto.
        """
        if self._stage != DECIDING:
            raise CallStageError("the arm is assigned before any veto")
        self.arm = arm
        self.intended = intended
        self.propensity = propensity
        if act is not None:
            flags = _frozen_flags(act)
            self._act = flags if self._vetoed is False else _without(flags, self._vetoed)
        if reason is not None:
            self.reasons.append(reason)

    def close_decision(self) -> None:
        """End the deciding steps: from now on the action can only be vetoed."""
        self._stage = VETOING

    def close_vetoes(self) -> None:
        """End the vetoing steps: recorders write down a decision they cannot change."""
        self._stage = DONE

    def veto(self, reason: str, where: bool | NDArray[np.bool_] = True) -> None:
        """Turn the action off (where *where* is true) and record *reason*.

        For a batch, *where* is one truth value per row (or one for all); the
        reason is recorded once if any row was vetoed. A vetoed action stays
        vetoed, also through the assigner's step. Recorders, which run once
        the decision is final, cannot veto (:class:`CallStageError`).
        """
        act = self._act
        if act is None:
            return
        if self._stage == DONE:
            raise CallStageError("the decision is final: recorders cannot veto it")
        if isinstance(act, bool):
            if act and bool(np.asarray(where, dtype=np.bool_).all()):
                self._act = False
                self._vetoed = True
                self.reasons.append(reason)
            return
        mask = np.asarray(where, dtype=np.bool_)
        if mask.ndim == 0:
            mask = np.full(act.shape, bool(mask))
        elif mask.shape != act.shape:
            raise ValueError(f"veto needs one flag per row: {mask.shape} for {act.shape}")
        vetoed = act & mask
        if vetoed.any():
            self._act = _frozen_flags(act & ~vetoed)
            self._vetoed = vetoed | self._vetoed
            self.reasons.append(reason)

    def mark_degraded(self) -> None:
        """Note that a mechanism's failure policy decided part of this call."""
        self.degraded = True


def _without(act: Any, vetoed: Any) -> bool | NDArray[np.bool_]:
    """*act* with the vetoed rows off."""
    if isinstance(act, bool):
        return act and not bool(np.all(vetoed))
    return _frozen_flags(np.asarray(act, dtype=np.bool_) & ~np.asarray(vetoed, dtype=np.bool_))


def _frozen_flags(flags: Any) -> bool | NDArray[np.bool_]:
    """A bool for one row, a read-only bool array for a batch."""
    if isinstance(flags, (bool, np.bool_)):
        return bool(flags)
    out = np.array(flags, dtype=np.bool_)
    if out.ndim == 0:
        return bool(out)
    out.flags.writeable = False
    return out


# -- the roles -------------------------------------------------------------------------


@runtime_checkable
class Mechanism(Protocol):
    """What every part of a guard has: a kind, a name and where its events come from.

    ``kind`` names the mechanism's family in events (``"limit"``,
    ``"skew"``, ...); ``name`` identifies it within its guard. When a guard
    is built it sets ``source`` once (see :func:`attach`): the
    :class:`Source` stamped on every event the mechanism emits from then on.
    """

    kind: ClassVar[str]
    source: Source

    @property
    def name(self) -> str:
        """The mechanism's name, unique among its guard's mechanisms of its kind."""
        ...


@runtime_checkable
class InputMonitor(Mechanism, Protocol):
    """Looks at a call's inputs before the predict function runs (``inputs=``)."""

    def observe_call(self, call: Call) -> None:
        """Validate or sample ``call.inputs``; raise only as a chosen policy."""


@runtime_checkable
class Decider(Mechanism, Protocol):
    """Turns a prediction into "act?" (``threshold=``)."""

    def decide_call(self, call: Call) -> None:
        """Call ``call.decide(threshold, above)`` for ``call.prediction``."""


@runtime_checkable
class Assigner(Mechanism, Protocol):
    """Assigns each row to an arm of a randomized experiment (``holdout=``)."""

    def assign_call(self, call: Call) -> None:
        """Call ``call.assign(...)`` with the arms of ``call.inputs``."""


@runtime_checkable
class Limiter(Mechanism, Protocol):
    """Caps the actions a guard takes (``limits=``).

    :meth:`acquire_call` counts the call's actions, vetoes those past the
    limit, and returns a receipt (or None when nothing was counted). When the
    call is over, the guard hands the receipt back to :meth:`refund_call`
    with the final action, so that what a later step vetoed is given back; or
    with ``None`` when the call raised, so that everything is given back.
    """

    def acquire_call(self, call: Call) -> object | None:
        """Count the call's actions; veto those past the limit."""

    def refund_call(self, receipt: object, act: bool | NDArray[np.bool_] | None) -> None:
        """Give back what *receipt* counted where *act* is false (all if None)."""


@runtime_checkable
class AsyncLimiter(Limiter, Protocol):
    """A :class:`Limiter` that can also decide without blocking an event loop.

    A guard on an ``async def`` predict function awaits
    :meth:`acquire_call_async` and :meth:`refund_call_async` of a limiter
    that has them (a shared store then does async I/O); it calls the sync
    methods of a limiter that has only those. Both sides must count, veto
    and refund alike: an async guard decides what a sync one would.
    """

    async def acquire_call_async(self, call: Call) -> object | None:
        """:meth:`~Limiter.acquire_call` for a guard on an ``async def`` function."""

    async def refund_call_async(
        self, receipt: object, act: bool | NDArray[np.bool_] | None
    ) -> None:
        """:meth:`~Limiter.refund_call` for a guard on an ``async def`` function."""


@runtime_checkable
class Recorder(Mechanism, Protocol):
    """Writes down what a call predicted and decided (``outcomes=``)."""

    def record_call(self, call: Call) -> None:
        """Record ``call.prediction`` and the decision; never raises."""


#: Which live guard each mechanism serves: id(mechanism) -> (mechanism, guard), weakly.
_OWNERS: dict[int, tuple[Callable[[], Any], Callable[[], Any]]] = {}
_OWNERS_LOCK = threading.Lock()


def _fresh_owners_lock() -> None:
    # A thread of the parent may have held it at the fork: the child starts anew.
    global _OWNERS_LOCK
    _OWNERS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_fresh_owners_lock)


def _owner(mechanism: Any) -> Any:
    entry = _OWNERS.get(id(mechanism))
    if entry is None or entry[0]() is not mechanism:
        return None
    return entry[1]()


def check_free(mechanism: Any, guard: Any) -> None:
    """Refuse *mechanism* if another live guard than *guard* already serves it.

    A mechanism serves one guard: its events name that guard. Share a limit's
    budget between guards through its store, not by sharing the object. A
    guard that is gone frees its mechanisms.
    """
    from ._errors import ConfigError

    with _OWNERS_LOCK:
        owner = _owner(mechanism)
    if owner is not None and owner is not guard:
        raise ConfigError(
            f"{type(mechanism).__name__} {mechanism.name!r} already serves guard "
            f"{owner.name!r}; a mechanism serves one guard (create another, "
            "sharing a limit's store to share its budget)"
        )


def attach(mechanism: Any, source: Source, guard: Any = None) -> None:
    """Stamp *source* on *mechanism* and note that *guard* serves it (see :func:`check_free`)."""
    if guard is not None:
        check_free(mechanism, guard)
        guard_ref = weakref.ref(guard)
        try:
            mechanism_ref: Callable[[], Any] = weakref.ref(mechanism)
        except TypeError:  # not weakly referable: held for as long as the guard lives

            def mechanism_ref(strong: Any = mechanism) -> Any:
                return strong if guard_ref() is not None else None

        with _OWNERS_LOCK:
            for key in [k for k, (m, g) in _OWNERS.items() if m() is None or g() is None]:
                del _OWNERS[key]
            _OWNERS[id(mechanism)] = (mechanism_ref, guard_ref)
    mechanism.source = source
