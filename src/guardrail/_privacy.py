"""What guardrail keeps of user text: redacted, bounded, and exception types only.

A leaf module (it imports nothing of guardrail), so that the monitors and the
OpenTelemetry hook read the settings :func:`guardrail.instrumentation.configure`
changes without importing the configuration module.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Final

__all__ = ["MAX_TEXT", "PRIVACY", "Privacy", "digest_text", "redact"]

#: A process secret for digest_text: digests are stable within a process only.
_DIGEST_KEY: Final = os.urandom(16)
#: The longest user text kept, after redaction.
MAX_TEXT: Final = 64


def digest_text(text: str) -> str:
    """*text* as ``~`` and 12 hex digits of a keyed BLAKE2b digest (the default redaction).

    Equal texts give equal digests within one process, so counts by slice or
    by name still add up; the key is random per process, so a digest cannot be
    reversed by hashing guesses.
    """
    data = text.encode("utf-8", "surrogatepass")
    return "~" + hashlib.blake2b(data, digest_size=6, key=_DIGEST_KEY).hexdigest()


class Privacy:
    """The privacy settings (one instance: ``PRIVACY``; changed through ``configure``)."""

    __slots__ = ("exception_messages", "redact")

    def __init__(self) -> None:
        #: What user text (slice keys, unexpected feature names) becomes where it is kept.
        self.redact: Callable[[str], str] = digest_text
        #: Record the message of a guarded function's exception, not only its type.
        self.exception_messages = False


PRIVACY = Privacy()


def redact(value: object) -> str:
    """User text as guardrail keeps it: redacted by ``configure(redact=...)``, bounded.

    Never raises: a value whose ``str`` fails, or a redaction function that
    fails, gives a placeholder naming the type.
    """
    try:
        text = value if type(value) is str else str(value)
    except Exception:  # noqa: BLE001 - a key whose __str__ raises is still a key
        return f"<unprintable {type(value).__name__}>"
    try:
        shown = PRIVACY.redact(text)
    except Exception:  # noqa: BLE001 - the user's function failing must not leak the text
        return "<redaction failed>"
    if type(shown) is not str:
        return "<redaction failed>"
    return shown if len(shown) <= MAX_TEXT else shown[: MAX_TEXT - 1] + "…"
