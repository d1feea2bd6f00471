"""Durations: a number of seconds, or a string such as ``"30s"``, ``"5m"``, ``"1h"``.

Every setting that takes a length of time (a limit's ``per``, an outcome
monitor's ``ttl``) reads it here, so they all accept the same spellings.
"""

from __future__ import annotations

import math
import re
from typing import Final

from ._errors import ConfigError

__all__ = ["parse_duration"]

UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d|w)\s*$")


def parse_duration(value: object, *, name: str = "a duration") -> float:
    """Seconds, from a number of seconds or a string like ``"30s"`` or ``"1.5h"``.

    Units: ``ms``, ``s``, ``m``, ``h``, ``d``, ``w``; a number may precede the
    unit (``"90s"``, ``"1.5h"``); a unit alone means one of it (``"h"``). The
    result is positive and finite; anything else is a
    :class:`~guardrail.ConfigError` naming *name*.

    >>> parse_duration("1h"), parse_duration(30), parse_duration("500ms")
    (3600.0, 30.0, 0.5)
    """
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ConfigError(
                f"cannot read {name} {value!r}: use seconds or a string like '30s', '1m', "
                "'1h', '1d'"
            )
        number, unit = match.groups()
        seconds = (float(number) if number else 1.0) * UNITS[unit]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond float range
            seconds = math.inf
    else:
        raise ConfigError(f"{name} is seconds or a string like '1m', got {value!r}")
    if not 0.0 < seconds < math.inf:
        raise ConfigError(f"{name} must be positive and finite, got {value!r}")
    return seconds
