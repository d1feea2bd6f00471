"""One guarded call as the mechanisms see it, and the protocol they implement.

A guard runs its mechanisms in a fixed order around the predict function::

    before:  inputs monitor (skew)                    -- sees call.inputs
    predict
    after:   threshold -> holdout -> limits -> outcomes

Each ``after`` reads what the previous ones decided and may veto the action
(set ``call.act`` to False where it applies and add a reason). A mechanism
that raises a :class:`~guardrail.PolicyError` stops the call: that is a policy
the user chose. Any other exception is machinery failing: the guard counts
and reports it and carries on with the prediction unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ._model import ModelRef
    from ._prediction import Prediction, Threshold

__all__ = ["Call", "Mechanism"]


@attrs.define(slots=True, eq=False)
class Call:
    """What one guarded call has seen and decided so far.

    Attributes:
        guard: The guard's name.
        model: The guard's model.
        inputs: The predict function's first positional argument: one row
            (a mapping of feature name to value) or a batch (a 2-D numpy
            array, or a sequence of row mappings).
        batch_size: ``None`` for one row; the number of rows for a batch.
        prediction: Set once the predict function returned.
        threshold: Set by the threshold step.
        above: Where the prediction passed the threshold.
        act: Where the action will be taken; mechanisms after the threshold
            may only turn ``True`` into ``False``.
        reasons: Why actions were vetoed, e.g. ``"limit:block_card"``.
        arm: The holdout arm (``"model"`` or ``"holdout"``), if a holdout is
            configured; an array of them for a batch.
        intended: The action the randomized policy chose (the model's in the
            model arm, the default action in the holdout arm), set by the
            holdout before action limits or a kill switch may veto it.
        propensity: The probability of the intended action under the
            randomization, if randomized.
        degraded: Set when a mechanism's failure policy decided.
        started: ``time.perf_counter()`` when the call began.
    """

    guard: str
    model: ModelRef
    inputs: Any
    batch_size: int | None
    prediction: Prediction[Any] | None = None
    threshold: Threshold[Any] | None = None
    above: bool | NDArray[np.bool_] | None = None
    act: bool | NDArray[np.bool_] | None = None
    reasons: list[str] = attrs.Factory(list)
    arm: str | NDArray[np.str_] | None = None
    intended: bool | NDArray[np.bool_] | None = None
    propensity: float | NDArray[np.float64] | None = None
    degraded: bool = False
    started: float = 0.0

    def veto(self, reason: str, where: bool | NDArray[np.bool_] = True) -> None:
        """Turn the action off (where *where* is true) and record *reason*.

        For a batch, *where* is a bool array over the rows; the reason is
        recorded once if any row was vetoed.
        """
        act = self.act
        if act is None:
            return
        if isinstance(act, bool):
            if act and where is True:
                self.act = False
                self.reasons.append(reason)
            return
        vetoed = act & where
        if vetoed.any():
            self.act = act & ~vetoed
            self.reasons.append(reason)


@runtime_checkable
class Mechanism(Protocol):
    """A part of a guard (a monitor, a threshold, a holdout, a limit).

    ``name`` identifies it in events, span attributes and the registry. A
    mechanism may also define ``check_config(config)``: it is called once, when a
    guard is configured with it, and refuses a configuration it cannot serve
    by raising ``ConfigError`` or ``ScaleError`` (better then than on every
    call).
    """

    name: str

    def before(self, call: Call) -> None:
        """Look at ``call.inputs`` before the predict function runs."""

    def after(self, call: Call) -> None:
        """Look at the prediction and the decision so far; may veto."""
