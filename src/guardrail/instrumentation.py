"""Instrumentation: hooks, events, and the process-wide switch for them.

Every span, metric and log line guardrail produces goes through the
configured hooks. By default those are a :class:`StructlogHook` (events as
log lines) and an :class:`OpenTelemetryHook` on the global providers (spans
and metrics once an SDK is set); ``configure(hooks=[])`` turns everything
off.

>>> from guardrail.instrumentation import CallHook, OpenTelemetryHook, configure, get_config
>>> saved = get_config()
>>> configure(hooks=[])                      # no span, no metric, no log line
>>> isinstance(OpenTelemetryHook(), CallHook)
True
>>> configure(hooks=saved.hooks)
"""

from __future__ import annotations

from ._config import configure
from ._events import (
    ConsumerUndeclared,
    Event,
    MachineryError,
    OutOfScale,
    PauseChanged,
    PredictionMade,
)
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
    SkewCheckDelayed,
    SkewDetected,
    ThresholdChanged,
    ThresholdClampHit,
    UpstreamFailure,
)
from ._otel import OpenTelemetryHook
from ._protocols import CallHook, Hook
from ._public import publish
from ._settings import Settings, get_config
from ._structlog import StructlogHook

__all__ = [
    "CalibrationOutOfRange",
    "CallHook",
    "ConsumerUndeclared",
    "DecisionLogFailed",
    "Event",
    "Hook",
    "InputsInvalid",
    "LimitDegraded",
    "LimitExceeded",
    "LimitNear",
    "LimitRecovered",
    "MachineryError",
    "OpenTelemetryHook",
    "OutOfScale",
    "OutcomesLost",
    "PauseChanged",
    "PredictionBiasOutOfRange",
    "PredictionMade",
    "RetrainHookFailed",
    "Settings",
    "SkewCheckDelayed",
    "SkewDetected",
    "StructlogHook",
    "ThresholdChanged",
    "ThresholdClampHit",
    "UpstreamFailure",
    "configure",
    "get_config",
]

publish(__name__, globals(), __all__)
