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
    ModelMismatchError,
    OutOfScaleError,
    PolicyError,
    ProfileFormatError,
    ProfileMismatchError,
    ScaleError,
    SchemaViolation,
    UndeclaredConsumerError,
)
from ._events import (
    ConsumerUndeclared,
    Event,
    InputsInvalid,
    KillSwitchChanged,
    LimitDegraded,
    LimitExceeded,
    LimitNear,
    LimitRecovered,
    MachineryError,
    OutOfScale,
    PredictionMade,
    SkewDetected,
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
from ._hooks import Hook, StructlogHook
from ._limits import ActionLimit, LimitCounter, LimitStore, MemoryStore, Window, parse_per
from ._model import ModelRef, fingerprint_bytes, fingerprint_file
from ._otel import OpenTelemetryHook
from ._prediction import Decision, Prediction, Threshold
from ._profile import CategoricalProfile, FeatureSpec, NumericProfile, Profile, Schema
from ._redis import RedisStore
from ._scales import LogOdds, Probability, Score
from ._skew import SkewMonitor

__version__ = "0.1.0"

__all__ = [
    "ActionLimit",
    "ActionLimitExceeded",
    "Call",
    "CategoricalProfile",
    "Change",
    "ConfigDiff",
    "ConfigError",
    "ConsumerUndeclared",
    "Decision",
    "DriftThresholds",
    "Event",
    "FeatureDrift",
    "FeatureSpec",
    "FormatError",
    "Guard",
    "GuardConfig",
    "GuardStats",
    "GuardrailError",
    "Hook",
    "InputsInvalid",
    "KillSwitchChanged",
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
    "PolicyError",
    "Prediction",
    "PredictionMade",
    "PredictionOutOfScaleError",
    "Probability",
    "Profile",
    "ProfileFormatError",
    "ProfileMismatchError",
    "RedisStore",
    "ScaleError",
    "Schema",
    "SchemaViolation",
    "Score",
    "SkewDetected",
    "SkewMonitor",
    "SkewReport",
    "StructlogHook",
    "Threshold",
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
