"""Late outcomes joined to predictions: prediction bias, calibration and precision.

>>> import guardrail as gr
>>> monitor = gr.OutcomeMonitor()
>>> monitor.pending
0
"""

from __future__ import annotations

from ._outcomes import Calibration, OutcomeMonitor, OutcomeReport, calibration
from ._public import publish

__all__ = [
    "Calibration",
    "OutcomeMonitor",
    "OutcomeReport",
    "calibration",
]

publish(__name__, globals(), __all__)
