"""Delivery to the configured hooks: events, and the mechanisms' counters."""

from __future__ import annotations

from collections.abc import Mapping

from ._config import CONFIG, GLOBAL_OTEL, OFF, UNRESOLVED
from ._events import Event
from ._otel import sdk_configured
from ._protocols import CallHook, Hook

__all__ = ["CallHook", "Hook", "add", "emit", "metrics_configured"]


def emit(event: Event) -> None:
    """Send *event* to every active hook; a failing hook never raises here."""
    for hook in CONFIG.hooks:
        try:
            hook.emit(event)
        except Exception:  # noqa: BLE001 - a hook must never break the caller
            CONFIG.hook_errors += 1


def metrics_configured() -> bool:
    """True if a configured hook takes counters now.

    The one branch a mechanism's hot path pays when nothing is recorded:
    with no call hook (``configure(hooks=[])``) one attribute is read; with
    only the default OpenTelemetry hook, whether an SDK is set.
    """
    mode = CONFIG.metrics_mode
    if mode == OFF:
        return False
    if mode == GLOBAL_OTEL:
        return sdk_configured()
    if mode == UNRESOLVED:
        _ = CONFIG.hooks  # choose the default hooks now
        return metrics_configured()
    return True


def add(instrument: str, amount: int, attributes: Mapping[str, str]) -> None:
    """Add *amount* to the counter *instrument* of every call hook (see :meth:`CallHook.add`)."""
    for hook in CONFIG.call_hooks:
        try:
            hook.add(instrument, amount, attributes)
        except Exception:  # noqa: BLE001 - a hook must never break the caller
            CONFIG.hook_errors += 1
