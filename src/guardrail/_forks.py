"""What a forked child must not inherit as it is: locks held by threads that do not exist there.

``os.fork()`` copies one thread. A lock another thread held at that instant
stays held in the child forever, and the child's first call that needs it
hangs. Every lock a mechanism or sink keeps is made with :func:`fork_safe_lock`
(or registered with :func:`in_child`), and a handler run in the child
replaces it with a fresh one. (Releasing the inherited lock is not enough: a
thread that was waiting for it at the fork can leave it unusable.) Code that
bound a lock's methods rebinds them with its own :func:`in_child` callback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar, cast

from ._config import CONFIG

__all__ = ["fork_safe_lock", "in_child"]

T = TypeVar("T")

# id(owner) -> (weak owner, what to run in the child with the owner).
_OWNERS: dict[int, tuple[Callable[[], Any], list[Callable[[Any], None]]]] = {}
# Re-entrant: a collection inside in_child() may run forget() in the same thread.
_REGISTRY = threading.RLock()


def in_child(owner: T, callback: Callable[[T], None]) -> None:
    """Run ``callback(owner)`` in every child forked while *owner* is alive.

    *owner* is held weakly (strongly if it takes no weak reference: a
    process-wide object); the callbacks run in the order registered, before
    any other code of the child, with no other thread running.
    """
    key = id(owner)

    def forget(_: object, key: int = key) -> None:
        with _REGISTRY:
            held = _OWNERS.get(key)
            if held is not None and held[0]() is None:
                del _OWNERS[key]

    with _REGISTRY:
        held = _OWNERS.get(key)
        if held is None or held[0]() is not owner:
            try:
                ref: Callable[[], Any] = weakref.ref(owner, forget)
            except TypeError:
                ref = functools.partial(_same, owner)
            held = (ref, [])
            # Registered last, so its callbacks run after those of what it was built on.
            _OWNERS.pop(key, None)
            _OWNERS[key] = held
        held[1].append(cast(Callable[[Any], None], callback))


def _same(owner: object) -> object:
    return owner


def fork_safe_lock(owner: object, attribute: str = "_lock") -> threading.Lock:
    """A new lock for ``owner.<attribute>``, replaced by a fresh one in a forked child.

    >>> class Box:
    ...     def __init__(self) -> None:
    ...         self._lock = fork_safe_lock(self)
    >>> Box()._lock.locked()
    False
    """
    lock = threading.Lock()
    in_child(owner, lambda o: setattr(o, attribute, threading.Lock()))
    return lock


def _before() -> None:
    _REGISTRY.acquire()


def _after_in_parent() -> None:
    _REGISTRY.release()


def _after_in_child() -> None:
    _REGISTRY.release()
    for ref, callbacks in list(_OWNERS.values()):
        owner = ref()
        if owner is None:
            continue
        for callback in callbacks:
            with contextlib.suppress(Exception):  # one owner must not stop the others
                callback(owner)


os.register_at_fork(
    before=_before, after_in_parent=_after_in_parent, after_in_child=_after_in_child
)
# The process-wide settings' lock (taken by configure()).
in_child(CONFIG, lambda config: setattr(config, "lock", threading.Lock()))
