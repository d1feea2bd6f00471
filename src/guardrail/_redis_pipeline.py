"""One pipelined Redis connection per event loop: the store's async side.

Every async command of a :class:`~guardrail._redis.RedisStore` on one event
loop (decisions, refunds, write-backs, the epoch look-up) goes through one
:class:`Pipeline`. Commands submitted in a turn of the loop are written
together, in one write, after it; one reader task matches the replies to
them in order. So a burst of concurrent decisions costs the loop what their
guards cost plus a list append each (no connection, no timer, no socket call
per decision), and the server answers them in one pass.

A decision waits for its reply up to its deadline, counted from its
submission, connection set-up included: one timer for all of a loop's
decisions expires the late ones. A decision that expired before it was
written is never sent (nothing is counted); one that expired (or whose caller
was cancelled) after it was written keeps its place, and its reply, when it
comes, goes to the submitter's ``late`` callback (which gives back a count
that no action took).

A connection that fails (reset, refused, no reply for ``LATE_FOR``, or one
second past a longer deadline) fails
every command written to it and is dropped; the next submission connects
anew.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

#: How long (s) the pipeline waits for a connection, a write or the next reply
#: before it gives the connection up.
LATE_FOR = 5.0

#: Replies handed out before the reader lets the loop turn: the callers they
#: wake run in small groups, so a burst of replies does not hold the loop.
REPLIES_PER_TURN = 32

#: What a ``late`` callback is given: the command's entry, its reply and the error
#: (one of the two is None).
Late = Callable[["Entry", Any, BaseException | None], None]


def pack(*args: bytes | str | int) -> bytes:
    """One command in the Redis protocol (RESP)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


class Entry:
    """One submitted command: what to write, who waits for it, until when."""

    __slots__ = ("args", "chunks", "expires", "future", "late")

    def __init__(
        self,
        future: asyncio.Future[Any] | None,
        chunks: list[bytes] | Callable[[], list[bytes]],
        expires: float | None,
        late: Late | None,
        args: tuple[Any, ...],
    ) -> None:
        self.future = future
        #: The encoded command, or a function that encodes it when it is written.
        self.chunks = chunks
        #: Loop time after which nobody waits for the reply (None: no deadline).
        self.expires = expires
        #: Called with the reply when the future is done or absent.
        self.late = late
        #: The submitter's own data for ``late``.
        self.args = args

    @property
    def cancelled(self) -> bool:
        """Whether the waiting caller was cancelled (and so took no action)."""
        return self.future is not None and self.future.cancelled()


class _Link:
    """One connection and the commands written to it, in order."""

    __slots__ = ("connection", "reader", "sent")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.sent: deque[Entry] = deque()
        self.reader: asyncio.Task[None] | None = None


class Pipeline:
    """The async commands of one store on one event loop, pipelined on one connection.

    Only used from its loop's thread.

    Args:
        loop: The event loop.
        connect: Opens a new connection (not yet connected).
        on_connect: The commands to write first on every new connection
            (loading scripts, say), as entries.
        response_error: The client's error-reply exception: raised for one
            command, it fails that command only.
        deadline: How long a decision waits for Redis (see :meth:`_write`).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        connect: Callable[[], Any],
        on_connect: Callable[[], list[Entry]],
        response_error: type[Exception],
        deadline: float,
    ) -> None:
        self.loop = loop
        self.deadline = deadline
        #: How long the connection may go without a reply (or a write, or
        #: connecting) before it is given up: LATE_FOR, or longer for a longer deadline.
        self.patience = max(LATE_FOR, deadline + 1.0)
        self._connect_new = connect
        self._on_connect = on_connect
        self._response_error = response_error
        #: Submitted, not yet written.
        self.queue: list[Entry] = []
        #: Entries with a deadline, oldest first (the timer's list).
        self.waiting: deque[Entry] = deque()
        self.link: _Link | None = None
        self.links: set[_Link] = set()
        self.writer: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    # -- submitting ------------------------------------------------------

    def submit(
        self,
        chunks: list[bytes] | Callable[[], list[bytes]],
        expires: float | None = None,
        late: Late | None = None,
        args: tuple[Any, ...] = (),
        *,
        wait: bool = True,
    ) -> asyncio.Future[Any] | None:
        """Queue one command; its future (None without *wait*: only *late* hears of it).

        *expires*: the loop time at which the future fails with
        ``TimeoutError`` if no reply came (None: it waits as long as the
        connection lives, up to ``LATE_FOR`` a reply).
        """
        future = self.loop.create_future() if wait else None
        entry = Entry(future, chunks, expires, late, args)
        self.queue.append(entry)
        if expires is not None:
            self.waiting.append(entry)
            self._arm(expires)
        if self.writer is None:
            self.writer = self.loop.create_task(self._write())
        return future

    def prepend(self, entries: list[Entry]) -> None:
        """Queue *entries* (without deadlines) ahead of what is queued, written after this turn."""
        self.queue[:0] = entries
        if self.writer is None:
            self.writer = self.loop.create_task(self._write())

    @property
    def busy(self) -> bool:
        """Whether a command is queued or waits for its reply."""
        return bool(self.queue) or any(link.sent for link in self.links)

    # -- deadlines -------------------------------------------------------

    def _arm(self, expires: float) -> None:
        """Have the timer fire by *expires* (a later submission never pushes it back)."""
        timer = self.timer
        if timer is not None:
            if timer.when() <= expires:
                return
            timer.cancel()
        self.timer = self.loop.call_at(expires, self._expire)

    def _expire(self) -> None:
        # A reply that arrived in this turn is handed out by the reader in the
        # next one: expire after it (the deadline bounds the wait for Redis,
        # not for a busy loop).
        self.timer = None
        self.loop.call_soon(self._expire_due, self.loop.time())

    def _expire_due(self, now: float) -> None:
        waiting = self.waiting
        while waiting:
            entry = waiting[0]
            future = entry.future
            if future is not None and not future.done():
                expires = entry.expires
                assert expires is not None
                if expires > now:
                    self._arm(expires)
                    return
                future.set_exception(TimeoutError("no reply within the deadline"))
            waiting.popleft()

    # -- writing and reading -----------------------------------------------

    async def _write(self) -> None:
        """Write what was queued, connecting first if need be, until the queue is empty."""
        try:
            while self.queue:
                link = self.link
                # The deadline bounds the wait for Redis: time the loop spent on
                # other work before this write (a burst's own calls, a garbage
                # collection) is not held against a decision, time spent
                # connecting is.
                renewed = None
                if link is None:
                    try:
                        link = await self._connect()
                    except Exception as e:  # noqa: BLE001 - every queued command fails with it
                        queued, self.queue = self.queue, []
                        for entry in queued:
                            self._deliver(entry, None, e)
                        continue
                else:
                    renewed = self.loop.time() + self.deadline
                queued, self.queue = self.queue, []
                chunks: list[bytes] = []
                for entry in queued:
                    future = entry.future
                    if future is not None and future.done():
                        continue  # expired or cancelled before it was written: never counted
                    if renewed is not None and entry.expires is not None:
                        entry.expires = max(entry.expires, renewed)
                    made = entry.chunks
                    if not isinstance(made, list):
                        try:
                            made = made()
                        except Exception as e:  # noqa: BLE001 - that command fails alone
                            self._deliver(entry, None, e)
                            continue
                    chunks.extend(made)
                    link.sent.append(entry)
                if not chunks:
                    continue
                if link.reader is None:
                    link.reader = self.loop.create_task(self._read(link))
                try:
                    async with asyncio.timeout(self.patience):
                        await link.connection.send_packed_command(chunks, check_health=False)
                except Exception as e:  # noqa: BLE001 - the connection is gone
                    await self._drop(link, e)
        except BaseException as e:
            # Cancelled (aclose): nothing queued is written.
            queued, self.queue = self.queue, []
            for entry in queued:
                self._deliver(entry, None, ConnectionError("the store was closed"))
            if not isinstance(e, Exception):
                raise
        finally:
            self.writer = None

    async def _connect(self) -> _Link:
        connection = self._connect_new()
        try:
            async with asyncio.timeout(self.patience):
                await connection.connect()
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        link = _Link(connection)
        self.links.add(link)
        self.link = link
        self.queue[:0] = self._on_connect()
        return link

    async def _read(self, link: _Link) -> None:
        """Hand each reply on *link* to its command, in order, until none is pending."""
        sent = link.sent
        connection = link.connection
        handed = 0
        clock = self.loop.time
        patience = self.patience
        try:
            while sent:
                started = clock()
                try:
                    reply = await connection.read_response(
                        timeout=patience, disconnect_on_error=False
                    )
                except self._response_error as e:  # an error reply: its command only
                    self._deliver(sent.popleft(), None, e)
                    continue
                # The client answers None both for a nil reply (SET NX that did
                # not set, GET of nothing) and for no reply within the time-out.
                if reply is None and clock() - started >= patience:
                    raise TimeoutError(f"no reply within {patience} s")
                self._deliver(sent.popleft(), reply, None)
                handed += 1
                if handed % REPLIES_PER_TURN == 0:
                    await asyncio.sleep(0)
        except BaseException as e:
            link.reader = None
            await self._drop(link, e if isinstance(e, Exception) else None)
            if not isinstance(e, Exception):
                raise
        finally:
            link.reader = None

    async def _drop(self, link: _Link, error: Exception | None) -> None:
        """Give up *link*: every command on it fails (what it counted stays)."""
        if self.link is link:
            self.link = None
        self.links.discard(link)
        failed = error or ConnectionError("the store was closed")
        pending = list(link.sent)
        link.sent.clear()
        for entry in pending:
            self._deliver(entry, None, failed)
        reader = link.reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        with contextlib.suppress(Exception):  # the socket is closed either way
            await link.connection.disconnect(nowait=True)

    @staticmethod
    def _deliver(entry: Entry, reply: Any, error: BaseException | None) -> None:
        future = entry.future
        if future is not None and not future.done():
            if error is None:
                future.set_result(reply)
            else:
                future.set_exception(error)
        elif entry.late is not None:
            entry.late(entry, reply, error)

    # -- closing -----------------------------------------------------------

    async def drain(self, timeout: float | None = None) -> None:
        """Wait (up to *timeout*, by default the patience) until nothing is in flight."""
        deadline = self.loop.time() + (self.patience if timeout is None else timeout)
        while (self.busy or self.writer is not None) and self.loop.time() < deadline:
            await asyncio.sleep(0.001)

    async def aclose(self, timeout: float | None = None) -> None:
        """Wait (up to *timeout*) for pending replies, then close the connection."""
        await self.drain(timeout)
        writer = self.writer
        if writer is not None:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for link in list(self.links):
            await self._drop(link, None)
