"""Action limits: caps on how many actions a model may cause per window, per key.

>>> import guardrail as gr
>>> limit = gr.ActionLimit("block_card", max_actions=2, per="1h")
>>> limit.allow(), limit.allow(), limit.allow()
(True, True, False)
"""

from __future__ import annotations

from ._limits import ActionLimit, LimitCounter, LimitStore, MemoryStore, Window
from ._public import publish
from ._redis import RedisStore

__all__ = [
    "ActionLimit",
    "LimitCounter",
    "LimitStore",
    "MemoryStore",
    "RedisStore",
    "Window",
]

publish(__name__, globals(), __all__)
