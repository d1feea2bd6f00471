"""Process-wide settings: one locked object, read by guards at call time.

Hooks are chosen lazily: the defaults are resolved on the first event, so
``import guardrail`` configures nothing. Hooks are sorted by what they do
(call hooks, prediction hooks) once, when they are set, so that a call reads
one attribute.

This module imports no module that imports it: the protocols come from
``_protocols`` and the default hooks from ``_structlog`` and ``_otel``.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterable
from typing import Literal

from ._errors import ConfigError
from ._privacy import PRIVACY, digest_text
from ._protocols import CallHook, Hook

__all__ = ["CONFIG", "Config", "UndeclaredPolicy", "configure", "default_hooks"]

UndeclaredPolicy = Literal["report", "raise"]

UNRESOLVED, OFF, GLOBAL_OTEL, ON = -1, 0, 1, 2


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


_UNSET = _Unset()


class Config:
    """guardrail's process-wide settings (one instance: ``CONFIG``)."""

    __slots__ = (
        "_hooks",
        "_prediction_hooks",
        "call_hooks",
        "deterministic",
        "hook_errors",
        "id_prefix",
        "ids",
        "lock",
        "metrics_mode",
        "mode",
        "on_undeclared_consumer",
        "pause_reason",
        "paused",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._hooks: tuple[Hook, ...] | None = None
        self._prediction_hooks: tuple[Hook, ...] = ()
        #: Hooks that open a scope around each call and take metrics (CallHook).
        self.call_hooks: tuple[CallHook, ...] = ()
        #: What a guarded call must do about telemetry, decided when the hooks
        #: change so that a call reads one attribute: UNRESOLVED, OFF, GLOBAL_OTEL
        #: (only if an OpenTelemetry SDK is set) or ON.
        self.mode = UNRESOLVED
        #: The same for the counters of mechanisms (no prediction events there).
        self.metrics_mode = UNRESOLVED
        #: The global kill switch (see guardrail.pause_all).
        self.paused = False
        self.pause_reason = ""
        self.on_undeclared_consumer: UndeclaredPolicy = "report"
        self.deterministic = False
        self.hook_errors = 0
        self._reset_ids()

    def _reset_ids(self) -> None:
        #: Prediction ids are this prefix and the next number of ``ids``,
        #: joined only when read; next() on itertools.count is atomic.
        self.id_prefix = "test-" if self.deterministic else os.urandom(6).hex() + "-"
        self.ids = itertools.count(1)

    def id_parts(self) -> tuple[int, str]:
        """The next id as (counter, prefix), to be joined only when read."""
        return next(self.ids), self.id_prefix

    def next_id(self) -> str:
        """A process-unique id: a random prefix and a counter (cheap, no uuid)."""
        return self.id_prefix + str(next(self.ids))

    @property
    def hooks(self) -> tuple[Hook, ...]:
        """The active hooks; the defaults are resolved on first access."""
        hooks = self._hooks
        if hooks is None:
            self.set_hooks(default_hooks(), only_if_unset=True)
            hooks = self._hooks
            assert hooks is not None
        return hooks

    @property
    def prediction_hooks(self) -> tuple[Hook, ...]:
        """The hooks that asked for one event per prediction."""
        if self._hooks is None:
            _ = self.hooks
        return self._prediction_hooks

    def set_hooks(self, hooks: Iterable[Hook] | None, *, only_if_unset: bool = False) -> None:
        with self.lock:
            if only_if_unset and self._hooks is not None:
                return
            if hooks is None:
                self._hooks, self._prediction_hooks, self.call_hooks = None, (), ()
                self.mode = self.metrics_mode = UNRESOLVED
                return
            self._hooks = tuple(hooks)
            self._prediction_hooks = tuple(
                h for h in self._hooks if getattr(h, "wants_predictions", False)
            )
            self.call_hooks = tuple(h for h in self._hooks if isinstance(h, CallHook))
            if not self.call_hooks:
                self.metrics_mode = OFF
            elif all(h.needs_sdk for h in self.call_hooks):
                self.metrics_mode = GLOBAL_OTEL
            else:
                self.metrics_mode = ON
            self.mode = ON if self._prediction_hooks else self.metrics_mode


def default_hooks() -> tuple[Hook, ...]:
    """structlog for events, OpenTelemetry (global providers) for spans and metrics."""
    from ._otel import OpenTelemetryHook
    from ._structlog import StructlogHook

    return (StructlogHook(), OpenTelemetryHook())


CONFIG = Config()
# A forked child must not hand out the ids its parent already used.
os.register_at_fork(after_in_child=CONFIG._reset_ids)


def configure(
    *,
    hooks: Iterable[Hook] | _Unset | None = _UNSET,
    on_undeclared_consumer: UndeclaredPolicy | _Unset = _UNSET,
    redact: Callable[[str], str] | _Unset | None = _UNSET,
    exception_messages: bool | _Unset = _UNSET,
) -> None:
    """Change guardrail's process-wide settings; what is not passed stays.

    Args:
        hooks: The hooks that receive events (:class:`Hook`); those that are
            also a :class:`CallHook` open a scope around each guarded call and
            take the mechanisms' counters. ``None`` restores the defaults
            (structlog and OpenTelemetry); an empty list turns instrumentation
            off entirely: no span, no metric, no log line.
        on_undeclared_consumer: What :meth:`Prediction.consume` does when the
            consumer is not declared by the model: ``"report"`` (emit
            :class:`ConsumerUndeclared`, the default) or ``"raise"``
            (:class:`UndeclaredConsumerError`).
        redact: What user text becomes wherever guardrail keeps or reports it:
            outcome slice keys and the names of unexpected input features, in
            events, log lines, spans, statistics and reports. A function of
            the text; its result is cut to 64 characters. ``None`` restores
            the default, a keyed digest (``~`` and 12 hex digits) that is
            stable within a process; ``str`` keeps the text as it is.
        exception_messages: Record the message of a guarded function's
            exception on the call's span, not only its type (off by default:
            messages often hold input values).

    >>> import guardrail as gr
    >>> gr.configure(hooks=[])          # instrumentation off
    >>> gr.configure(hooks=None)        # back to the defaults
    """
    if not isinstance(hooks, _Unset):
        if hooks is not None:
            hooks = tuple(hooks)
            for hook in hooks:
                _check_hook(hook)
        CONFIG.set_hooks(hooks)
    if not isinstance(on_undeclared_consumer, _Unset):
        if on_undeclared_consumer not in ("report", "raise"):
            raise ConfigError(
                "on_undeclared_consumer must be 'report' or 'raise', "
                f"got {on_undeclared_consumer!r}"
            )
        CONFIG.on_undeclared_consumer = on_undeclared_consumer
    if not isinstance(redact, _Unset):
        if redact is not None and not callable(redact):
            raise ConfigError(f"redact must be a function of a string or None, got {redact!r}")
        PRIVACY.redact = digest_text if redact is None else redact
    if not isinstance(exception_messages, _Unset):
        if not isinstance(exception_messages, bool):
            raise ConfigError(f"exception_messages must be a bool, got {exception_messages!r}")
        PRIVACY.exception_messages = exception_messages


_CALL_HOOK_MEMBERS = ("needs_sdk", "start_call", "end_call", "machinery_error", "add")


def _check_hook(hook: object) -> None:
    if not isinstance(hook, Hook) or not callable(hook.emit):
        raise ConfigError(f"a hook needs an emit(event) method: {hook!r}")
    if hasattr(hook, "start_call") and not isinstance(hook, CallHook):
        # Half a call hook would silently be treated as an event hook: say what is missing.
        missing = [name for name in _CALL_HOOK_MEMBERS if not hasattr(hook, name)]
        raise ConfigError(f"a call hook needs {', '.join(missing)} too (see CallHook): {hook!r}")
