"""Reading untrusted documents: bounded reprs and one typed error for anything malformed.

A document read back from a file or a store may be anything: truncated,
nested thousands deep, holding integers of thousands of digits or values of
the wrong type. Loaders check what they can and say what is wrong; whatever
slips past their checks (an ``OverflowError`` converting a huge integer, a
``RecursionError`` on deep nesting, a ``TypeError`` on a wrong type) still
leaves as the loader's documented :class:`~guardrail.errors.FormatError`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any, Final

from ._errors import FormatError, GuardrailError

__all__ = ["brief", "loads", "reading"]

#: The longest repr of a user's value an error message quotes.
BRIEF: Final = 60

#: What a malformed document may raise before a loader's checks catch it.
_STRAY: Final = (
    ArithmeticError,  # OverflowError, ZeroDivisionError
    AttributeError,
    LookupError,  # KeyError, IndexError
    MemoryError,
    RecursionError,
    TypeError,
    ValueError,  # UnicodeError, too long integer strings
)


def brief(value: object, limit: int = BRIEF) -> str:
    """A repr of *value* at most about *limit* characters long, never raising.

    >>> brief("x" * 100, 10)
    "'xxxxxxxx…"
    >>> brief(10**5000)
    '<int of about 5001 digits>'
    """
    if type(value) is int and value.bit_length() > 200:
        # str() refuses integers of over 4,300 digits.
        return f"<int of about {int(value.bit_length() * 0.30103) + 1} digits>"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a repr that fails, recurses or is too long
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


@contextlib.contextmanager
def reading(what: str, error: type[FormatError] = FormatError) -> Iterator[None]:
    """Turn anything but a :class:`FormatError` raised inside into *error*.

    Other guardrail errors (a configuration, scale or model mismatch inside
    the document) keep their message; stray builtins name their type only.
    """
    try:
        yield
    except FormatError:
        raise
    except GuardrailError as e:
        raise error(f"{what}: {e}") from e
    except RecursionError:
        raise error(f"{what}: nested too deeply") from None
    except MemoryError:
        raise error(f"{what}: too large to read") from None
    except _STRAY as e:
        raise error(f"{what}: malformed ({type(e).__name__})") from e


def loads(text: str | bytes, what: str, error: type[FormatError] = FormatError) -> Any:
    """The parsed JSON *text*, or *error*: never another exception."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise error(f"{what} is read from JSON text, got {type(text).__name__}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{what} must be valid JSON: {e.msg} at line {e.lineno}") from None
    except RecursionError:
        raise error(f"{what}: JSON nested too deeply") from None
    except MemoryError:
        raise error(f"{what}: too large to read") from None
    except (ValueError, TypeError) as e:  # undecodable bytes, integers too long to read
        raise error(f"{what} must be valid JSON: {brief(str(e), 120)}") from None
