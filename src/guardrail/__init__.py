"""guardrail: typed predictions and guardrails around ML models in production.

The top level holds what a first guarded function and the common mechanisms
need. The rest lives in public modules by family: :mod:`guardrail.guards`,
:mod:`guardrail.mechanisms` (the contract), :mod:`guardrail.limits`,
:mod:`guardrail.skew`, :mod:`guardrail.thresholds`, :mod:`guardrail.holdout`,
:mod:`guardrail.outcomes`, :mod:`guardrail.instrumentation`,
:mod:`guardrail.errors` and :mod:`guardrail.testing`.

>>> import guardrail as gr
>>> model = gr.ModelRef(name="fraud", version="3.1.0")
>>> p = gr.Prediction(gr.LogOdds(2.0).to_probability(), model)
>>> round(p.value.value, 3)
0.881
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._config import configure
from ._durations import parse_duration
from ._errors import ConfigError, GuardrailError, PolicyError
from ._guard import Guard, guard, guard_of, pause_all, registry, resume_all
from ._guard_config import GuardConfig, diff
from ._model import ModelRef, fingerprint_bytes, fingerprint_file
from ._prediction import Decision, Prediction, Threshold
from ._public import TOP_LEVEL, publish
from ._scales import LogOdds, Probability, Score
from ._version import __version__ as __version__

# The mechanisms load on first use: a process that only types its predictions
# does not pay for profiles, limits or thresholds at import.
if TYPE_CHECKING:
    from . import errors as errors
    from . import guards as guards
    from . import holdout as holdout
    from . import instrumentation as instrumentation
    from . import limits as limits
    from . import mechanisms as mechanisms
    from . import outcomes as outcomes
    from . import skew as skew
    from . import testing as testing
    from . import thresholds as thresholds
    from ._drift import compare
    from ._holdout import DecisionLog, Holdout
    from ._limits import ActionLimit
    from ._outcomes import OutcomeMonitor
    from ._profile import Profile
    from ._redis import RedisStore
    from ._skew import SkewMonitor
    from ._thresholds import DynamicThreshold

_SUBMODULES = frozenset(
    {
        "errors",
        "guards",
        "holdout",
        "instrumentation",
        "limits",
        "mechanisms",
        "outcomes",
        "skew",
        "testing",
        "thresholds",
    }
)

if not TYPE_CHECKING:  # mypy sees the imports above; a typo stays a type error

    def __getattr__(name: str) -> object:
        if name in _SUBMODULES:
            return importlib.import_module(f"{__name__}.{name}")
        module = TOP_LEVEL.get(name)
        if module is None or module == __name__:
            raise AttributeError(f"module 'guardrail' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(__all__) | _SUBMODULES | {"__version__"})


__all__ = [
    "ActionLimit",
    "ConfigError",
    "Decision",
    "DecisionLog",
    "DynamicThreshold",
    "Guard",
    "GuardConfig",
    "GuardrailError",
    "Holdout",
    "LogOdds",
    "ModelRef",
    "OutcomeMonitor",
    "PolicyError",
    "Prediction",
    "Probability",
    "Profile",
    "RedisStore",
    "Score",
    "SkewMonitor",
    "Threshold",
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

publish(__name__, globals(), [n for n in __all__ if n in globals()])
