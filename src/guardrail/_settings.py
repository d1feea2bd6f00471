"""The settings as a value: what :func:`get_config` returns.

Apart from ``_config`` because building an attrs class costs import time
that ``import guardrail`` need not pay: this loads with the public
``guardrail.instrumentation`` module.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ._config import CONFIG, UndeclaredPolicy
from ._privacy import PRIVACY, digest_text
from ._protocols import Hook

__all__ = ["Settings", "get_config"]


@attrs.frozen
class Settings:
    """guardrail's process-wide settings, as :func:`get_config` returns them.

    Each field is an argument of :func:`configure`, so settings saved with
    ``get_config()`` are restored with
    ``configure(**attrs.asdict(saved, recurse=False))``.

    Attributes:
        hooks: The active hooks (the defaults once resolved; empty when
            instrumentation is off).
        on_undeclared_consumer: ``"report"`` or ``"raise"``.
        redact: The function user text (slice keys, unexpected feature
            names) goes through before guardrail keeps or reports it.
        exception_messages: Whether a guarded function's exception message
            is recorded, not only its type.
    """

    hooks: tuple[Hook, ...]
    on_undeclared_consumer: UndeclaredPolicy
    redact: Callable[[str], str] = digest_text
    exception_messages: bool = False


def get_config() -> Settings:
    """The active process-wide settings (the default hooks are resolved if still unset).

    >>> from guardrail.instrumentation import configure, get_config
    >>> saved = get_config()
    >>> configure(hooks=[])
    >>> get_config().hooks
    ()
    >>> configure(hooks=saved.hooks)
    >>> get_config() == saved
    True
    """
    return Settings(
        hooks=CONFIG.hooks,
        on_undeclared_consumer=CONFIG.on_undeclared_consumer,
        redact=PRIVACY.redact,
        exception_messages=PRIVACY.exception_messages,
    )
