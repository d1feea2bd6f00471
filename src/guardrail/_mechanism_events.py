"""The events of the mechanisms: limits, skew, thresholds, outcomes, holdout.

Kept apart from the core events so that importing guardrail does not pay for
the classes of mechanisms a process never uses.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs

from ._events import Event, Level

__all__ = [
    "CalibrationOutOfRange",
    "DecisionLogFailed",
    "InputsInvalid",
    "LimitDegraded",
    "LimitExceeded",
    "LimitNear",
    "LimitRecovered",
    "OutcomesLost",
    "PredictionBiasOutOfRange",
    "RetrainHookFailed",
    "SkewDetected",
    "ThresholdChanged",
    "ThresholdClampHit",
    "UpstreamFailure",
]


@attrs.frozen
class SkewDetected(Event):
    """The current profile drifted from the reference on one feature.

    ``metric`` is the metric furthest past its threshold (``"psi"``,
    ``"js"``, ``"wasserstein"``, ``"linf"``, ``"out_of_range"``, ...),
    ``value`` its value, ``warn`` / ``alert`` the levels applied.
    """

    kind: ClassVar[str] = "skew.detected"
    level: ClassVar[Level] = "warning"
    feature: str
    metric: str
    value: float
    warn: float
    alert: float
    severity: str
    samples: int


@attrs.frozen
class UpstreamFailure(Event):
    """A feature's missing rate jumped: its producer has probably failed."""

    kind: ClassVar[str] = "skew.upstream_failure"
    level: ClassVar[Level] = "error"
    feature: str
    missing_rate: float
    reference_missing_rate: float
    samples: int


@attrs.frozen
class InputsInvalid(Event):
    """Inputs broke the schema (counted, policy ``"record"``) since the last check.

    ``problem`` is ``"missing"``, ``"unexpected"``, ``"type"``, ``"nan_inf"``
    or ``"out_of_range"``; ``count`` how many sampled inputs had it.
    """

    kind: ClassVar[str] = "skew.inputs_invalid"
    level: ClassVar[Level] = "warning"
    feature: str
    problem: str
    count: int


@attrs.frozen
class LimitExceeded(Event):
    """An action limit denied an action (once per key and bucket, not per denial).

    ``key`` is a short digest of the limit key, never the key itself;
    ``report_only`` says the limit's policy is ``on_exceed="report"`` (the
    action went ahead).
    """

    kind: ClassVar[str] = "limit.exceeded"
    level: ClassVar[Level] = "warning"
    key: str | None
    windows: tuple[str, ...]
    report_only: bool
    degraded: bool


@attrs.frozen
class LimitNear(Event):
    """A key's use of an action limit crossed the limit's ``near`` fraction."""

    kind: ClassVar[str] = "limit.near"
    level: ClassVar[Level] = "warning"
    key: str | None
    near: float


@attrs.frozen
class LimitDegraded(Event):
    """A limit's decisions were made by its failure policy, not by its store.

    Sent for the first degraded decision of an outage, then at most once a
    second; ``decisions`` counts the degraded decisions since the last one.
    """

    kind: ClassVar[str] = "limit.degraded"
    level: ClassVar[Level] = "error"
    policy: str
    error: str
    decisions: int


@attrs.frozen
class LimitRecovered(Event):
    """A limit's store answered again after degraded decisions."""

    kind: ClassVar[str] = "limit.recovered"
    level: ClassVar[Level] = "info"
    degraded_decisions: int


@attrs.frozen
class ThresholdChanged(Event):
    """A dynamic threshold saved a new value under a new version."""

    kind: ClassVar[str] = "threshold.changed"
    scale: str
    value: float
    version: int


@attrs.frozen
class ThresholdClampHit(Event):
    """A dynamic threshold reached its lower or upper clamp.

    While it stays there the realised rate of positive decisions drifts from
    the target: during an attack the true positive rate rises, and a pure
    rate tracker would hide it.
    """

    kind: ClassVar[str] = "threshold.clamp_hit"
    level: ClassVar[Level] = "warning"
    bound: Literal["lower", "upper"]
    value: float
    hits: int


@attrs.frozen
class PredictionBiasOutOfRange(Event):
    """Mean prediction minus mean observed label left its bounds.

    ``slice`` is ``None`` for all traffic, else the slice key.
    """

    kind: ClassVar[str] = "outcomes.bias_out_of_range"
    level: ClassVar[Level] = "warning"
    slice: str | None
    bias: float
    lower: float
    upper: float
    outcomes: int


@attrs.frozen
class CalibrationOutOfRange(Event):
    """The expected calibration error (equal-count bins) exceeded its bound.

    It fires when the ECE's 99.9 % interval ``[lower, upper]`` lies above
    ``bound``; ``ece`` is the debiased estimate. ``slice`` is ``None`` for
    all traffic, else the slice key.
    """

    kind: ClassVar[str] = "outcomes.calibration_out_of_range"
    level: ClassVar[Level] = "warning"
    slice: str | None
    ece: float
    lower: float
    upper: float
    bound: float
    outcomes: int


@attrs.frozen
class OutcomesLost(Event):
    """Predictions or labels that could not be joined (reported at doubling counts).

    ``reason`` is ``"evicted"`` (``capacity`` predictions were already waiting),
    ``"expired"`` (older than the time-to-live) or ``"unmatched"`` (a label for an
    unknown or already expired prediction id). ``count`` is the running total.
    """

    kind: ClassVar[str] = "outcomes.lost"
    level: ClassVar[Level] = "warning"
    reason: Literal["evicted", "expired", "unmatched"]
    count: int


@attrs.frozen
class RetrainHookFailed(Event):
    """The user's retraining callback raised; the error was swallowed."""

    kind: ClassVar[str] = "outcomes.retrain_hook_failed"
    level: ClassVar[Level] = "error"
    error: str
    count: int


@attrs.frozen
class DecisionLogFailed(Event):
    """Decision records were dropped (reported at doubling counts).

    ``reason`` is ``"full"`` (the sink's buffer was full) or ``"error"`` (the
    sink raised). ``count`` is the running total for that reason.
    """

    kind: ClassVar[str] = "decision_log.failed"
    level: ClassVar[Level] = "error"
    reason: Literal["full", "error"]
    count: int
    error: str
