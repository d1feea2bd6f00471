"""Which module each public name reports: the top level or its family's module.

Reprs, tracebacks and the documentation show a name where users import it
from, as httpx does: ``guardrail.ActionLimit``, ``guardrail.limits.Window``,
never ``guardrail._limits``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import FunctionType
from typing import Any, Final

__all__ = ["TOP_LEVEL", "publish"]

#: The names ``import guardrail`` offers, and the public module each is read from.
TOP_LEVEL: Final = {
    "ActionLimit": "guardrail.limits",
    "ConfigError": "guardrail.errors",
    "Decision": "guardrail",
    "DecisionLog": "guardrail.holdout",
    "DynamicThreshold": "guardrail.thresholds",
    "Guard": "guardrail.guards",
    "GuardConfig": "guardrail.guards",
    "GuardrailError": "guardrail.errors",
    "Holdout": "guardrail.holdout",
    "LogOdds": "guardrail",
    "ModelRef": "guardrail",
    "OutcomeMonitor": "guardrail.outcomes",
    "PolicyError": "guardrail.errors",
    "Prediction": "guardrail",
    "Probability": "guardrail",
    "Profile": "guardrail.skew",
    "RedisStore": "guardrail.limits",
    "Score": "guardrail",
    "SkewMonitor": "guardrail.skew",
    "Threshold": "guardrail",
    "compare": "guardrail.skew",
    "configure": "guardrail.instrumentation",
    "diff": "guardrail.guards",
    "fingerprint_bytes": "guardrail",
    "fingerprint_file": "guardrail",
    "guard": "guardrail.guards",
    "guard_of": "guardrail.guards",
    "parse_duration": "guardrail",
    "pause_all": "guardrail.guards",
    "registry": "guardrail.guards",
    "resume_all": "guardrail.guards",
}


def publish(module: str, namespace: Mapping[str, Any], names: Iterable[str]) -> None:
    """Make each class and function in *names* report its public module.

    A name offered at the top level reports ``guardrail``; the others report
    *module*. Only the reported module changes: each name is still reachable
    there, so what is pickled by reference loads again.
    """
    for name in names:
        value = namespace[name]
        if isinstance(value, (type, FunctionType)):
            value.__module__ = "guardrail" if name in TOP_LEVEL else module
