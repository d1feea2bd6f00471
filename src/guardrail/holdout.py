"""Randomized holdout by hashed unit id, and the decision log it feeds.

>>> import guardrail as gr
>>> h = gr.Holdout(fraction=0.5, unit=lambda row: row["user_id"], salt="2026-11")
>>> h.arm({"user_id": 42}) == h.arm({"user_id": 42})
True
"""

from __future__ import annotations

from ._holdout import DecisionLog, DecisionRecord, DecisionSink, Holdout, JsonLinesSink
from ._public import publish

__all__ = [
    "DecisionLog",
    "DecisionRecord",
    "DecisionSink",
    "Holdout",
    "JsonLinesSink",
]

publish(__name__, globals(), __all__)
