"""Guards: the decorator, the object beneath it, its configuration, and the registry.

>>> import guardrail as gr
>>> model = gr.ModelRef(name="fraud", version="3.1.0")
>>> @gr.guard(model=model, returns=gr.Probability)
... def predict(row: dict[str, float]) -> float:
...     return 0.25
>>> gr.guard_of(predict).stats().calls
0
"""

from __future__ import annotations

from ._guard import Guard, GuardStats, guard, guard_of, pause_all, registry, resume_all
from ._guard_config import Change, ConfigDiff, GuardConfig, diff
from ._public import publish

__all__ = [
    "Change",
    "ConfigDiff",
    "Guard",
    "GuardConfig",
    "GuardStats",
    "diff",
    "guard",
    "guard_of",
    "pause_all",
    "registry",
    "resume_all",
]

publish(__name__, globals(), __all__)
