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

from types import FunctionType

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
    SkewDetected,
    ThresholdChanged,
    ThresholdClampHit,
    UpstreamFailure,
)
from ._otel import OpenTelemetryHook
from ._protocols import CallHook, Hook
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
    "SkewDetected",
    "StructlogHook",
    "ThresholdChanged",
    "ThresholdClampHit",
    "UpstreamFailure",
    "configure",
    "get_config",
]

# Reprs, tracebacks and documentation show the public path (as httpx does).
# Only the names' reported module changes: each is still reachable there, so a
# pickled event (by reference) loads again.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, (type, FunctionType)):
        _value.__module__ = __name__
del _name, _value
