"""One background thread for work that must not run inside a guarded call.

The thread starts on the first job (never at import) and is a daemon: jobs
still queued when the interpreter exits are dropped. After ``os.fork`` the
child has no thread and possibly a lock held by a thread that no longer
exists, so the first job in the child builds a fresh lock, queue and thread.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Final

__all__ = ["CHECKS", "Worker"]


class Worker:
    """A lazily started daemon thread running jobs in order.

    >>> worker = Worker("example")
    >>> done = []
    >>> worker.submit(lambda: done.append(1))
    >>> worker.wait(5.0), done
    (True, [1])
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._pid = -1
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pending = 0

    def submit(self, job: Callable[[], None]) -> None:
        """Queue *job*; it runs on the worker thread (started now if need be)."""
        if self._pid != os.getpid():
            self._forked()
        with self._lock:
            self._pending += 1
            thread = self._thread
            if thread is None or not thread.is_alive():
                thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread = thread
                thread.start()
            self._queue.put(job)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every queued job has run; False if *timeout* seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        return self._pending

    def _forked(self) -> None:
        # In a new process (or before the first job): nothing of the parent's
        # thread survives, and its lock may be held forever.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._pending = 0

    def _run(self) -> None:
        jobs = self._queue
        while True:
            job = jobs.get()
            try:
                job()
            except Exception:  # noqa: BLE001 - a job reports its own failures
                pass
            finally:
                with self._idle:
                    self._pending -= 1
                    if not self._pending:
                        self._idle.notify_all()


#: The worker that runs skew checks for every monitor of the process.
CHECKS: Final = Worker("guardrail-checks")
