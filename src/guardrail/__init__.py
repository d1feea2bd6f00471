"""guardrail: typed predictions and guardrails around ML models in production.

>>> import guardrail as gr
>>> model = gr.ModelRef(name="fraud", version="3.1.0")
>>> p = gr.Prediction(gr.LogOdds(2.0).to_probability(), model)
>>> round(p.value.value, 3)
0.881
"""

from __future__ import annotations

from ._call import Call, Mechanism
from ._config import configure
from ._drift import DriftThresholds, FeatureDrift, MetricResult, SkewReport, compare
from ._errors import (
    ActionLimitExceeded,
    ConfigError,
    FormatError,
    GuardrailError,
    LabelError,
    ModelMismatchError,
    OutOfScaleError,
    PolicyError,
    ProfileFormatError,
    ProfileMismatchError,
    ScaleError,
    SchemaViolation,
    SinkFullError,
    UndeclaredConsumerError,
)
from ._events import (
    CalibrationOutOfRange,
    ConsumerUndeclared,
    DecisionLogFailed,
    Event,
    InputsInvalid,
    KillSwitchChanged,
    LimitDegraded,
    LimitExceeded,
    LimitNear,
    LimitRecovered,
    MachineryError,
    OutcomesLost,
    OutOfScale,
    PredictionBiasOutOfRange,
    PredictionMade,
    RetrainHookFailed,
    SkewDetected,
    ThresholdChanged,
    ThresholdClampHit,
    ThresholdFrozen,
    UpstreamFailure,
)
from ._guard import (
    Guard,
    GuardStats,
    PredictionOutOfScaleError,
    guard,
    guard_of,
    kill_all,
    registry,
    revive_all,
)
from ._guard_config import Change, ConfigDiff, GuardConfig, diff
from ._holdout import DecisionLog, DecisionRecord, DecisionSink, Holdout, JsonLinesSink
from ._hooks import Hook, StructlogHook
from ._limits import ActionLimit, LimitCounter, LimitStore, MemoryStore, Window, parse_per
from ._model import ModelRef, fingerprint_bytes, fingerprint_file
from ._otel import OpenTelemetryHook
from ._outcomes import OutcomeMonitor, OutcomeReport
from ._prediction import Decision, Prediction, Threshold
from ._profile import CategoricalProfile, FeatureSpec, NumericProfile, Profile, Schema
from ._redis import RedisStore
from ._scales import LogOdds, Probability, Score
from ._skew import SkewMonitor
from ._thresholds import DynamicThreshold

__version__ = "0.1.0"

__all__ = [
    "ActionLimit",
    "ActionLimitExceeded",
    "CalibrationOutOfRange",
    "Call",
    "CategoricalProfile",
    "Change",
    "ConfigDiff",
    "ConfigError",
    "ConsumerUndeclared",
    "Decision",
    "DecisionLog",
    "DecisionLogFailed",
    "DecisionRecord",
    "DecisionSink",
    "DriftThresholds",
    "DynamicThreshold",
    "Event",
    "FeatureDrift",
    "FeatureSpec",
    "FormatError",
    "Guard",
    "GuardConfig",
    "GuardStats",
    "GuardrailError",
    "Holdout",
    "Hook",
    "InputsInvalid",
    "JsonLinesSink",
    "KillSwitchChanged",
    "LabelError",
    "LimitCounter",
    "LimitDegraded",
    "LimitExceeded",
    "LimitNear",
    "LimitRecovered",
    "LimitStore",
    "LogOdds",
    "MachineryError",
    "Mechanism",
    "MemoryStore",
    "MetricResult",
    "ModelMismatchError",
    "ModelRef",
    "NumericProfile",
    "OpenTelemetryHook",
    "OutOfScale",
    "OutOfScaleError",
    "OutcomeMonitor",
    "OutcomeReport",
    "OutcomesLost",
    "PolicyError",
    "Prediction",
    "PredictionBiasOutOfRange",
    "PredictionMade",
    "PredictionOutOfScaleError",
    "Probability",
    "Profile",
    "ProfileFormatError",
    "ProfileMismatchError",
    "RedisStore",
    "RetrainHookFailed",
    "ScaleError",
    "Schema",
    "SchemaViolation",
    "Score",
    "SinkFullError",
    "SkewDetected",
    "SkewMonitor",
    "SkewReport",
    "StructlogHook",
    "Threshold",
    "ThresholdChanged",
    "ThresholdClampHit",
    "ThresholdFrozen",
    "UndeclaredConsumerError",
    "UpstreamFailure",
    "Window",
    "compare",
    "configure",
    "diff",
    "fingerprint_bytes",
    "fingerprint_file",
    "guard",
    "guard_of",
    "kill_all",
    "parse_per",
    "registry",
    "revive_all",
]
