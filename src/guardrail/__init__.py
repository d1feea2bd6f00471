"""guardrail: typed predictions and guardrails around ML models in production.

>>> import guardrail as gr
>>> model = gr.ModelRef(name="fraud", version="3.1.0")
>>> p = gr.Prediction(gr.LogOdds(2.0).to_probability(), model)
>>> round(p.value.value, 3)
0.881
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._call import (
    Assigner,
    Call,
    CallStageError,
    Decider,
    InputMonitor,
    Limiter,
    Mechanism,
    Recorder,
    Source,
)
from ._config import configure
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
    SinkClosedError,
    SinkFullError,
    UndeclaredConsumerError,
)
from ._events import (
    ConsumerUndeclared,
    Event,
    MachineryError,
    OutOfScale,
    PauseChanged,
    PredictionMade,
)
from ._guard import (
    Guard,
    GuardStats,
    PredictionOutOfScaleError,
    guard,
    guard_of,
    pause_all,
    registry,
    resume_all,
)
from ._guard_config import Change, ConfigDiff, GuardConfig, diff
from ._inputs import Inputs
from ._model import ModelRef, fingerprint_bytes, fingerprint_file
from ._otel import OpenTelemetryHook
from ._prediction import Decision, Prediction, Threshold
from ._protocols import Hook
from ._scales import LogOdds, Probability, Score
from ._structlog import StructlogHook
from ._version import __version__ as __version__

# The mechanisms load on first use: a process that only types its predictions
# does not pay for profiles, limits or thresholds at import.
if TYPE_CHECKING:
    from . import instrumentation as instrumentation
    from ._drift import DriftThresholds, FeatureDrift, MetricResult, SkewReport, compare
    from ._durations import parse_duration
    from ._holdout import DecisionLog, DecisionRecord, DecisionSink, Holdout, JsonLinesSink
    from ._limits import ActionLimit, LimitCounter, LimitStore, MemoryStore, Window
    from ._mechanism_events import (
        CalibrationOutOfRange,
        DecisionLogFailed,
        InputsInvalid,
        LimitDegraded,
        LimitExceeded,
        LimitNear,
        LimitRecovered,
        OutcomesLost,
        PredictionBiasOutOfRange,
        RetrainHookFailed,
        SkewDetected,
        ThresholdChanged,
        ThresholdClampHit,
        UpstreamFailure,
    )
    from ._outcomes import OutcomeMonitor, OutcomeReport
    from ._profile import (
        CategoricalProfile,
        FeatureSpec,
        NumericProfile,
        Profile,
        ProfileBuilder,
        Schema,
    )
    from ._redis import RedisStore
    from ._report import (
        Report,
        ReportFeature,
        ReportHistogram,
        ReportMetric,
        ReportSeries,
        ReportTable,
    )
    from ._skew import SkewMonitor
    from ._thresholds import DynamicThreshold

_LAZY = {
    "DriftThresholds": "._drift",
    "FeatureDrift": "._drift",
    "MetricResult": "._drift",
    "SkewReport": "._drift",
    "compare": "._drift",
    "parse_duration": "._durations",
    "DecisionLog": "._holdout",
    "DecisionRecord": "._holdout",
    "DecisionSink": "._holdout",
    "Holdout": "._holdout",
    "JsonLinesSink": "._holdout",
    "ActionLimit": "._limits",
    "LimitCounter": "._limits",
    "LimitStore": "._limits",
    "MemoryStore": "._limits",
    "Window": "._limits",
    "CalibrationOutOfRange": "._mechanism_events",
    "DecisionLogFailed": "._mechanism_events",
    "InputsInvalid": "._mechanism_events",
    "LimitDegraded": "._mechanism_events",
    "LimitExceeded": "._mechanism_events",
    "LimitNear": "._mechanism_events",
    "LimitRecovered": "._mechanism_events",
    "OutcomesLost": "._mechanism_events",
    "PredictionBiasOutOfRange": "._mechanism_events",
    "RetrainHookFailed": "._mechanism_events",
    "SkewDetected": "._mechanism_events",
    "ThresholdChanged": "._mechanism_events",
    "ThresholdClampHit": "._mechanism_events",
    "UpstreamFailure": "._mechanism_events",
    "OutcomeMonitor": "._outcomes",
    "OutcomeReport": "._outcomes",
    "CategoricalProfile": "._profile",
    "FeatureSpec": "._profile",
    "NumericProfile": "._profile",
    "Profile": "._profile",
    "ProfileBuilder": "._profile",
    "Schema": "._profile",
    "RedisStore": "._redis",
    "Report": "._report",
    "ReportFeature": "._report",
    "ReportHistogram": "._report",
    "ReportMetric": "._report",
    "ReportSeries": "._report",
    "ReportTable": "._report",
    "SkewMonitor": "._skew",
    "DynamicThreshold": "._thresholds",
}


if not TYPE_CHECKING:  # mypy sees the imports above; a typo stays a type error

    def __getattr__(name: str) -> object:
        if name == "instrumentation":  # the public submodule, loaded on first use
            return importlib.import_module(".instrumentation", __name__)
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'guardrail' has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"instrumentation"})


__all__ = [
    "ActionLimit",
    "ActionLimitExceeded",
    "Assigner",
    "CalibrationOutOfRange",
    "Call",
    "CallStageError",
    "CategoricalProfile",
    "Change",
    "ConfigDiff",
    "ConfigError",
    "ConsumerUndeclared",
    "Decider",
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
    "InputMonitor",
    "Inputs",
    "InputsInvalid",
    "JsonLinesSink",
    "LabelError",
    "LimitCounter",
    "LimitDegraded",
    "LimitExceeded",
    "LimitNear",
    "LimitRecovered",
    "LimitStore",
    "Limiter",
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
    "PauseChanged",
    "PolicyError",
    "Prediction",
    "PredictionBiasOutOfRange",
    "PredictionMade",
    "PredictionOutOfScaleError",
    "Probability",
    "Profile",
    "ProfileBuilder",
    "ProfileFormatError",
    "ProfileMismatchError",
    "Recorder",
    "RedisStore",
    "Report",
    "ReportFeature",
    "ReportHistogram",
    "ReportMetric",
    "ReportSeries",
    "ReportTable",
    "RetrainHookFailed",
    "ScaleError",
    "Schema",
    "SchemaViolation",
    "Score",
    "SinkClosedError",
    "SinkFullError",
    "SkewDetected",
    "SkewMonitor",
    "SkewReport",
    "Source",
    "StructlogHook",
    "Threshold",
    "ThresholdChanged",
    "ThresholdClampHit",
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
    "parse_duration",
    "pause_all",
    "registry",
    "resume_all",
]
