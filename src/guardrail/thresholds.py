"""Thresholds: fixed ones, and dynamic ones that hold a target rate of positive decisions.

>>> import guardrail as gr
>>> gr.DynamicThreshold(target_rate=0.01, initial=gr.Probability(0.9)).current().value
0.9
"""

from __future__ import annotations

from ._prediction import Threshold
from ._public import publish
from ._shared_threshold import SharedThreshold
from ._thresholds import DynamicThreshold

__all__ = [
    "DynamicThreshold",
    "SharedThreshold",
    "Threshold",
]

publish(__name__, globals(), __all__)
