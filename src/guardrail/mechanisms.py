"""The contract between a guard and its mechanisms: roles, the call, its inputs.

A guard runs its mechanisms in a fixed order around the predict function;
each slot of :func:`guardrail.guard` takes one role (a
:class:`~typing.Protocol`), so a mechanism in the wrong slot is a type error
and a :class:`~guardrail.errors.ConfigError`. See ``docs/mechanisms.md``.

>>> import guardrail as gr
>>> from guardrail.mechanisms import InputMonitor, Limiter
>>> limit = gr.ActionLimit("block_card", max_actions=1, per="1h")
>>> isinstance(limit, Limiter), isinstance(limit, InputMonitor)
(True, False)
"""

from __future__ import annotations

from ._call import (
    Assigner,
    AsyncLimiter,
    Call,
    Decider,
    InputMonitor,
    Limiter,
    Mechanism,
    Recorder,
    Source,
)
from ._inputs import InputBinding, Inputs, InputsKind
from ._limits import Receipt
from ._public import publish

__all__ = [
    "Assigner",
    "AsyncLimiter",
    "Call",
    "Decider",
    "InputBinding",
    "InputMonitor",
    "Inputs",
    "InputsKind",
    "Limiter",
    "Mechanism",
    "Receipt",
    "Recorder",
    "Source",
]

publish(__name__, globals(), __all__)
