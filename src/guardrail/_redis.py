"""The Redis store: action limits shared by processes and replicas.

One decision is one round trip: an ``EVALSHA`` of a Lua script that reads the
Redis server's clock (``TIME``), checks every window and counts the action,
atomically. The counting is the same sub-window algorithm as the in-memory
store (see ``docs/limits.md``), kept in one hash per limit key.

``redis`` is imported when a :class:`RedisStore` is made, never by
``import guardrail``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
import weakref
from collections.abc import Callable
from typing import Any, Literal

from ._errors import ConfigError
from ._forks import fork_safe_lock, in_child
from ._limits import (
    DEGRADED,
    DENY,
    KEY_SECRET_ENV,
    NAME_PATTERN,
    RECOVERED,
    MemoryCounter,
    Window,
    secret_key,
)
from ._redis_pipeline import LATE_FOR, Entry, Pipeline, pack

__all__ = ["RedisStore"]

OnStoreError = Literal["closed", "open", "local"]
OnStateLost = Literal["deny", "reset"]

#: Seconds past which taking a pooled connection counts as having set one up:
#: the decision's reply then waits only for what is left of its deadline.
SPENT_CONNECTING = 1e-4
#: Timed-out sync decisions kept waiting for their reply, per limit (each
#: holds a connection; async ones wait in the loop's pipeline), for up to LATE_FOR.
MAX_LATE = 8

#: The decide script's answer when the namespace's epoch marker is gone or new.
LOST = 4

_log = logging.getLogger("guardrail")

#: The most keys whose outage admissions are written back on recovery.
MAX_PENDING = 10_000

# KEYS[1]: the limit key. ARGV[1]: the weight; ARGV[2] '1' counts it without
# checking (what a process admitted on its own during an outage). KEYS[2], ARGV[3]:
# the namespace's epoch marker and the value this process knows ('' to skip): when
# they differ the counts were lost (a restart without persistence, an eviction),
# and the script returns 4 without counting. An admission's reply carries the
# server's clock when it counted, for an exact late refund: code + 8 * (µs
# modulo 2^32). The windows are constants of the
# script (rendered per limit): {width µs, sub-windows kept, max, near count, offset}.
# State: one msgpack array per key; per window at its offset: the current
# sub-window index, the running total, the alerted flag, then the counts (a ring).
# It is the in-memory algorithm, on the server's clock. Codes as in _limits:
# 0 allow, 1 allow and near, 2 deny, 3 deny and alert.
_PRELUDE = """
local W = {windows}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- The clock a reply carries and a late refund names: µs modulo 2^32.
local clock = now % 4294967296
if clock < 0 or clock >= 4294967296 then clock = 0 end
local raw = redis.call('GET', KEYS[1])
local s = {{}}
if raw then s = cmsgpack.unpack(raw) end
for i = 1, #W do
  local w = W[i]
  local width, slots, base = w[1], w[2], w[5]
  local b = math.floor(now / width)
  local cur = s[base + 1]
  if cur == nil then
    s[base + 1], s[base + 2], s[base + 3] = b, 0, 0
    for j = 1, slots do s[base + 3 + j] = 0 end
  elseif b > cur then
    if b - cur >= slots then
      for j = 1, slots do s[base + 3 + j] = 0 end
      s[base + 2] = 0
    else
      local total = s[base + 2]
      for x = cur + 1, b do
        local j = base + 4 + (x % slots)
        total = total - s[j]
        s[j] = 0
      end
      s[base + 2] = total
    end
    s[base + 1], s[base + 3] = b, 0
  end
end
"""

_DECIDE_BODY = """
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[3] then return 4 end
local weight = tonumber(ARGV[1])
local force = ARGV[2] == '1'
for i = 1, #W do
  local w = W[i]
  local base = w[5]
  if not force and s[base + 2] + weight > w[3] then
    if s[base + 3] == 1 then return 2 end
    s[base + 3] = 1
    redis.call('SET', KEYS[1], cmsgpack.pack(s), 'PX', {ttl_ms})
    return 3
  end
end
local code = 0
for i = 1, #W do
  local w = W[i]
  local base, slots = w[5], w[2]
  local before = s[base + 2]
  s[base + 2] = before + weight
  local j = base + 4 + (s[base + 1] % slots)
  s[j] = s[j] + weight
  if before < w[4] and before + weight >= w[4] then code = 1 end
end
redis.call('SET', KEYS[1], cmsgpack.pack(s), 'PX', {ttl_ms})
return code + 8 * clock
"""

# ARGV[1]: the weight to give back; ARGV[2]: µs since the decision began, at
# least. The count leaves the sub-window holding that instant (or an older one
# whose counts expire first: giving back too little, never too much). ARGV[3],
# when given: the server's clock when it counted (µs modulo 2^32, from the
# decision's reply): the count leaves exactly the sub-window it was counted in.
_REFUND_BODY = """
if not raw then return 0 end
local weight, age = tonumber(ARGV[1]), tonumber(ARGV[2])
if ARGV[3] then
  age = (clock - tonumber(ARGV[3])) % 4294967296
  if age < 0 or age >= 4294967296 then age = 0 end
end
for i = 1, #W do
  local w = W[i]
  local width, slots, base = w[1], w[2], w[5]
  local cur = s[base + 1]
  local x = math.floor((now - age) / width)
  if x > cur then x = cur end
  if cur - x < slots then
    local j = base + 4 + (x % slots)
    s[j] = s[j] - weight
    s[base + 2] = s[base + 2] - weight
  end
end
redis.call('SET', KEYS[1], cmsgpack.pack(s), 'PX', {ttl_ms})
return 0
"""

# Returns {remaining, µs until every counted action has expired}.
_PEEK_BODY = """
local remaining, reset = nil, 0
for i = 1, #W do
  local w = W[i]
  local width, slots, base = w[1], w[2], w[5]
  local left = w[3] - s[base + 2]
  if left < 0 then left = 0 end
  if remaining == nil or left < remaining then remaining = left end
  local cur = s[base + 1]
  for back = 0, slots - 1 do
    local x = cur - back
    if s[base + 4 + (x % slots)] > 0 then
      local r = (x + slots) * width - now
      if r > reset then reset = r end
      break
    end
  end
end
return {{remaining, reset}}
"""


def _layout(windows: tuple[Window, ...]) -> str:
    """8 hex digits naming how the scripts lay out a key's state (sub-window widths and counts).

    Part of every Redis key, so a limit redefined under its name with other
    windows starts afresh instead of reading counts laid out for the old ones.
    A new ``max_actions`` or ``near`` keeps the layout, and so the counts.
    """
    rendered = ";".join(f"{-(-round(w.per * 1e6) // w.buckets)},{w.buckets + 1}" for w in windows)
    return hashlib.blake2b(rendered.encode(), digest_size=4).hexdigest()


def _scripts(
    windows: tuple[Window, ...], near: float, caps: tuple[int, ...] | None = None
) -> tuple[str, str, str]:
    """The decide, peek and refund scripts for one limit's windows.

    *caps*: what shared decisions may count per window (each window's
    ``max_actions`` less what is held back for outages), by default the caps.
    """
    rows, offset, ttl_us = [], 0, 0
    for i, w in enumerate(windows):
        width = -(-round(w.per * 1e6) // w.buckets)
        slots = w.buckets + 1
        near_at = max(1, math.ceil(w.max_actions * near))
        cap = w.max_actions if caps is None else caps[i]
        rows.append(f"{{{width}, {slots}, {cap}, {near_at}, {offset}}}")
        offset += 3 + slots
        ttl_us = max(ttl_us, width * slots)
    prelude = _PRELUDE.format(windows="{" + ", ".join(rows) + "}")
    ttl_ms = -(-ttl_us // 1000) + 1
    return (
        prelude + _DECIDE_BODY.format(ttl_ms=ttl_ms),
        prelude + _PEEK_BODY.format(),
        prelude + _REFUND_BODY.format(ttl_ms=ttl_ms),
    )


# Connection settings copied from the user's client onto the store's own pool.
_COPIED = {
    "host",
    "port",
    "db",
    "username",
    "password",
    "credential_provider",
    "client_name",
    "path",
    "protocol",
}


class RedisStore:
    """Counts in Redis, shared by every process that uses the same namespace.

    Args:
        client: A ``redis.Redis`` or ``redis.asyncio.Redis``. The store
            opens its own connections to the same server (host, port, db,
            credentials, TLS) with *deadline* as socket time-outs and no
            retries, so the client's own retry settings cannot stretch a
            decision; sync and async actions are both supported.
        namespace: Prefixes every key (``guardrail:<namespace>:<limit>:...``);
            limits in different namespaces never share counts.
        deadline: Seconds a decision may wait for Redis (default 5 ms).
        on_store_error: When Redis cannot answer in time: ``"closed"`` (deny,
            the default), ``"open"`` (allow) or ``"local"`` (count in this
            process against its part of the share held back for outages).
        local_share: With ``"local"``: the fraction of each window's
            ``max_actions`` held back from shared decisions for outages
            (default 0.1). Shared decisions admit up to ``max_actions -
            floor(max_actions * local_share)``; during an outage each
            process admits on its own up to its part of the held-back share,
            ``floor(held / processes)`` per window, and writes it back to
            Redis when Redis answers again. So in any window the fleet stays
            within ``max_actions`` as long as at most *processes* processes
            share the namespace.
        processes: With ``"local"``: how many processes share the namespace.
        on_state_lost: When the counts are found lost (the namespace's epoch
            marker is gone: Redis restarted without persistence, or evicted
            keys): ``"deny"`` (the default) denies this limit's actions until
            its longest window has passed, so nothing counted before the
            loss can be exceeded; ``"reset"`` counts afresh at once (up to
            twice the cap in the window of the loss). Either way the
            decisions are degraded and reported with ``LimitDegraded``.
        key_secret: The secret limit keys are digested with in Redis key
            names (at least 16 characters; every process of the fleet must use
            the same one). By default the ``GUARDRAIL_KEY_SECRET`` environment
            variable; without either, keys are digested unkeyed, and anyone
            who can list the Redis keys can recover keys from a small space
            (a 6-digit id takes seconds) by hashing guesses.
        trip_after: Consecutive failed decisions (time-outs, errors) after
            which decisions skip Redis for *probe_every*. A failed decision
            is always decided by the policy, but one slow reply does not send
            the next decisions there: they try Redis again (default 3).
        probe_every: Once tripped, decisions skip Redis (and use the
            policy at once) for this many seconds, then try it again: the
            limit recovers by itself when Redis is back.

    Keys are ``guardrail:<namespace>:<limit>:<layout>:<digest>``: the key
    function's output is hashed (BLAKE2b, 128 bits, keyed with *key_secret*), so it can neither
    collide with another limit's keys nor escape the namespace, whatever it
    contains. ``<layout>`` is a short hash of the windows' sub-window widths
    and counts: a limit redefined under its name with other windows (another
    ``per`` or ``buckets``) starts from zero; a new ``max_actions`` keeps the
    counts.
    """

    def __init__(
        self,
        client: Any,
        *,
        namespace: str = "default",
        deadline: float = 0.005,
        on_store_error: OnStoreError = "closed",
        local_share: float = 0.1,
        processes: int = 1,
        probe_every: float = 0.1,
        key_secret: str | bytes | None = None,
        on_state_lost: OnStateLost = "deny",
        trip_after: int = 3,
    ) -> None:
        try:
            import redis
            import redis.asyncio
        except ImportError as e:  # pragma: no cover - the extra is installed in tests
            raise ConfigError("RedisStore needs redis: pip install 'guardrail-sdk[redis]'") from e
        if not isinstance(namespace, str) or not NAME_PATTERN.match(namespace):
            raise ConfigError(
                f"a namespace is 1-100 letters, digits, '_', '.' or '-', got {namespace!r}"
            )
        for name, value, low, high in (
            ("deadline", deadline, 0.0, 10.0),
            ("local_share", local_share, 0.0, 1.0),
            ("probe_every", probe_every, 0.0, 3600.0),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not low < value <= high
            ):
                raise ConfigError(f"{name} must be in ({low}, {high}], got {value!r}")
        if on_state_lost not in ("deny", "reset"):
            raise ConfigError(f"on_state_lost must be 'deny' or 'reset', got {on_state_lost!r}")
        if isinstance(trip_after, bool) or not isinstance(trip_after, int) or trip_after < 1:
            raise ConfigError(f"trip_after must be a positive int, got {trip_after!r}")
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise ConfigError(f"processes must be a positive int, got {processes!r}")
        if key_secret is None:
            key_secret = os.environ.get(KEY_SECRET_ENV) or None
        if key_secret is not None and (
            not isinstance(key_secret, (str, bytes)) or len(key_secret) < 16
        ):
            raise ConfigError("key_secret must be a str or bytes of at least 16 characters")
        if on_store_error not in ("closed", "open", "local"):
            raise ConfigError(
                f"on_store_error must be 'closed', 'open' or 'local', got {on_store_error!r}"
            )
        pool = getattr(client, "connection_pool", None)
        kwargs = getattr(pool, "connection_kwargs", None)
        if not isinstance(kwargs, dict):
            raise ConfigError(f"client must be a redis.Redis or redis.asyncio.Redis: {client!r}")
        kind = getattr(pool, "connection_class", None)
        classes = {
            redis.Connection: redis.asyncio.Connection,
            redis.SSLConnection: redis.asyncio.SSLConnection,
            redis.UnixDomainSocketConnection: redis.asyncio.UnixDomainSocketConnection,
        }
        by_async = {v: k for k, v in classes.items()}
        if kind in classes:
            sync_class, async_class = kind, classes[kind]
        elif kind in by_async:
            sync_class, async_class = by_async[kind], kind
        else:
            raise ConfigError(f"unsupported Redis connection class {kind!r}")
        settings = {k: v for k, v in kwargs.items() if k in _COPIED or k.startswith("ssl")}
        self.namespace = namespace
        self.deadline = float(deadline)
        self.on_store_error = on_store_error
        self.local_share = float(local_share)
        self.processes = processes
        self.trip_after = trip_after
        self.on_state_lost: OnStateLost = on_state_lost
        #: The namespace's epoch marker as this process knows it ('' until first contact).
        self.epoch = ""
        #: Whether limit keys are digested with a secret (see ``key_secret``).
        self.keyed = key_secret is not None
        self._digest_key = b"" if key_secret is None else secret_key(key_secret)
        self.probe_every = float(probe_every)
        self._settings = settings
        self._sync_class = sync_class
        self._async_class = async_class
        self._lock = fork_safe_lock(self)
        self._sync: Any = None
        #: The counters bound to this store (for close()).
        self._counters: weakref.WeakSet[RedisCounter] = weakref.WeakSet()
        #: Whether the server's eviction policy was looked at (once per store).
        self._policy_checked = False
        #: Each event loop's pipeline: id(loop) -> (loop, Pipeline).
        self._async: dict[int, tuple[Any, Pipeline]] = {}
        #: The scripts of the limits bound to this store, loaded on every new
        #: pipelined connection before its first decision.
        self._scripts: dict[str, None] = {}
        #: The local shares (``on_store_error="local"``) by limit key prefix and
        #: windows: limits of one name and windows on this store (a sync and an
        #: async guard, say) admit from one share, so the process stays within it.
        self._locals: dict[tuple[Any, ...], MemoryCounter] = {}
        # A child opens its own connections (the parent's sockets stay the parent's).
        in_child(self, _forget_clients)

    def _timeouts(self, retry: Any) -> dict[str, Any]:
        return {
            **self._settings,
            "socket_timeout": self.deadline,
            "socket_connect_timeout": self.deadline,
            "retry": retry,
            "health_check_interval": 0,
        }

    def sync_client(self) -> Any:
        """The store's own ``redis.Redis`` (made on first use)."""
        client = self._sync
        if client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            with self._lock:
                if self._sync is None:
                    pool = redis.ConnectionPool(
                        connection_class=self._sync_class, **self._timeouts(Retry(NoBackoff(), 0))
                    )
                    client = redis.Redis(connection_pool=pool)
                    self._warm(client)
                    self._sync = client
                client = self._sync
        return client

    def _warm(self, client: Any) -> None:
        """First contact: open a connection, learn the epoch, check the eviction policy.

        Never raises: a server that cannot answer now is the failure policy's
        business at the next decision.
        """
        try:
            if not self.epoch:
                self.epoch = self._adopt_epoch(client)
        except Exception:  # noqa: BLE001 - decided by the policy later
            return
        if self._policy_checked:
            return
        self._policy_checked = True
        try:
            policy = client.config_get("maxmemory-policy").get("maxmemory-policy", "")
        except Exception:  # noqa: BLE001 - CONFIG may be disabled: nothing to check
            return
        if policy not in ("noeviction", ""):
            _log.warning(
                "guardrail: Redis maxmemory-policy is %s: limit keys may be evicted "
                "(counts lost); use noeviction for the limits' Redis",
                policy,
            )

    def _adopt_epoch(self, client: Any) -> str:
        marker = f"guardrail:{self.namespace}:epoch"
        client.set(marker, os.urandom(8).hex(), nx=True)
        value = client.get(marker)
        return value.decode() if isinstance(value, bytes) else str(value or "")

    def new_epoch(self) -> None:
        """After a loss: take the namespace's new epoch (made by this process or another)."""
        try:
            self.epoch = self._adopt_epoch(self.sync_client())
        except Exception:  # noqa: BLE001 - keep the old one: the next decision retries
            return

    def new_epoch_async(self) -> None:
        """:meth:`new_epoch` through the running loop's pipeline (in the background)."""
        self.pipeline().prepend(self._epoch_entries())

    def _epoch_entries(self) -> list[Entry]:
        """Commands that take the namespace's epoch (made by this process or another)."""
        marker = f"guardrail:{self.namespace}:epoch"

        def adopt(_: Entry, reply: Any, error: BaseException | None) -> None:
            if error is None and reply:
                self.epoch = reply.decode() if isinstance(reply, bytes) else str(reply)

        return [
            Entry(None, [pack("SET", marker, os.urandom(8).hex(), "NX")], None, None, ()),
            Entry(None, [pack("GET", marker)], None, adopt, ()),
        ]

    def pipeline(self) -> Pipeline:
        """The running event loop's :class:`Pipeline` to Redis (made on first use)."""
        import asyncio

        loop = asyncio.get_running_loop()
        held = self._async.get(id(loop))
        if held is not None and held[0] is loop:
            return held[1]
        from redis.exceptions import ResponseError

        with self._lock:
            # Another thread may have replaced the map since the look-up above.
            held = self._async.get(id(loop))
            if held is not None and held[0] is loop:
                return held[1]
            pipeline = Pipeline(
                loop, self._async_connection, self._first_commands, ResponseError, self.deadline
            )
            # One pipeline per loop: asyncio connections cannot move between loops.
            # The map is replaced, never changed in place, so readers need no lock.
            kept = {k: v for k, v in self._async.items() if not v[0].is_closed()}
            kept[id(loop)] = (loop, pipeline)
            self._async = kept
        return pipeline

    def _async_connection(self) -> Any:
        """A new, unconnected async connection to the store's server.

        No socket time-out: the pipeline bounds its waits itself (each
        decision by its deadline, the connection by LATE_FOR).
        """
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        return self._async_class(
            **{
                **self._timeouts(Retry(NoBackoff(), 0)),
                "socket_timeout": None,
                "socket_connect_timeout": LATE_FOR,
            }
        )

    def _first_commands(self) -> list[Entry]:
        """What a new pipelined connection writes first: the scripts, and the epoch if unknown."""
        entries = [
            Entry(None, [pack("SCRIPT", "LOAD", script)], None, None, ())
            for script in list(self._scripts)
        ]
        if not self.epoch:
            entries.extend(self._epoch_entries())
        return entries

    async def aclose(self) -> None:
        """Close the running event loop's connection (await it before the loop ends).

        Replies still on their way (late decisions, and the refunds they
        bring) and queued write-backs are waited for first, up to LATE_FOR.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        held = self._async.get(id(loop))
        if held is None or held[0] is not loop:
            return
        # Drained while still the loop's pipeline: late replies' refunds join it.
        await held[1].drain()
        with self._lock:
            self._async = {k: v for k, v in self._async.items() if v is not held}
        await held[1].aclose()

    def close(self) -> None:
        """Close the sync connections (they reopen on the next decision).

        Connections kept for timed-out decisions' late replies are closed
        too (their counts stay: the safe side).
        """
        with self._lock:
            client, self._sync = self._sync, None
            late = [entry[0] for counter in list(self._counters) for entry in counter.late]
            for counter in list(self._counters):
                counter.late = []
        for connection in late:
            connection.disconnect()
        if client is not None:
            client.close()
            client.connection_pool.disconnect()

    def bind(self, name: str, windows: tuple[Window, ...], near: float) -> RedisCounter:
        """The counter for one limit; the first one opens a connection ahead of the decisions.

        Opening it here (with the epoch look-up) keeps connection set-up out
        of the first decision's deadline; if Redis cannot answer now, the
        first decision tries again.
        """
        self.sync_client()
        counter = RedisCounter(self, name, windows, near)
        self._counters.add(counter)
        return counter

    def __repr__(self) -> str:
        return (
            f"RedisStore(namespace={self.namespace!r}, deadline={self.deadline}, "
            f"on_store_error={self.on_store_error!r})"
        )


#: Clients inherited from a parent process, kept so that they are never
#: collected: closing one would take its pool's lock, which a thread of the
#: parent may have held at the fork.
_INHERITED: list[Any] = []


def _forget_clients(store: RedisStore) -> None:
    _INHERITED.append((store._sync, store._async))
    store._sync = None
    store._async = {}


def _forget_late(counter: RedisCounter) -> None:
    _INHERITED.append(counter.late)
    counter.late = []


def _counted_at(reply: Any) -> int | None:
    """The server's clock (µs modulo 2^32) when a decision's reply says it counted; else None."""
    if not isinstance(reply, int) or reply & 7 > 1:  # denied, or the counts were lost
        return None
    return reply >> 3


def _describe(error: BaseException) -> str:
    """An error as ``last_error`` keeps it: its type and message, at most 200 characters."""
    return f"{type(error).__name__}: {error}"[:200]


def _sha1(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


class RedisCounter:
    """One limit's counts in Redis, with the store's failure policy."""

    def __init__(
        self, store: RedisStore, name: str, windows: tuple[Window, ...], near: float
    ) -> None:
        self.store = store
        self.windows = windows
        self.prefix = f"guardrail:{store.namespace}:{name}:{_layout(windows)}:"
        self.deadline = store.deadline
        self.policy = store.on_store_error
        self.local: MemoryCounter | None = None
        caps = None
        if self.policy == "local":
            # Held back from shared decisions for outages, split across the processes:
            # in any window, shared (max - held) plus local (at most held) is within max.
            held = [math.floor(w.max_actions * store.local_share) for w in windows]
            caps = tuple(w.max_actions - h for w, h in zip(windows, held, strict=True))
            shares = [h // store.processes for h in held]
            if min(shares) > 0:
                local = tuple(
                    Window(share, w.per, buckets=w.buckets)
                    for w, share in zip(windows, shares, strict=True)
                )
                shape = (self.prefix, near, *((w.max_actions, w.per, w.buckets) for w in local))
                with store._lock:
                    self.local = store._locals.get(shape)
                    if self.local is None:
                        self.local = MemoryCounter(local, near, time.monotonic_ns)
                        store._locals[shape] = self.local
        #: What this process admitted on its own during outages, written back
        #: to Redis when it answers again: key -> weight.
        self.pending: dict[str, int] = {}
        self.decide_script, self.peek_script, self.refund_script = _scripts(windows, near, caps)
        self.decide_sha = _sha1(self.decide_script)
        self.peek_sha = _sha1(self.peek_script)
        self.refund_sha = _sha1(self.refund_script)
        with store._lock:
            store._scripts[self.decide_script] = None
            store._scripts[self.refund_script] = None
        self.command_head = b"*8\r\n$7\r\nEVALSHA\r\n$40\r\n%b\r\n$1\r\n2\r\n" % (
            self.decide_sha.encode()
        )
        self.epoch_key = f"guardrail:{store.namespace}:epoch"
        self.max_per = max(w.per for w in windows)
        #: Until when (monotonic seconds) decisions are denied after the counts were lost.
        self.lost_until = 0.0
        self.commands: dict[tuple[str, int], list[bytes]] = {}
        self.cached_epoch = ""
        from redis.exceptions import NoScriptError

        self.noscript = NoScriptError
        self.down_until = 0.0
        self.consecutive = 0
        self.failed = False
        #: Timed-out decisions whose reply may still come:
        #: (connection, key, weight, mark, until, whether to refund what it counted).
        self.late: list[tuple[Any, str, int, int, float, bool]] = []
        from redis.exceptions import TimeoutError as RedisTimeout

        self.timeouts = RedisTimeout
        # A child does not read its parent's late replies.
        in_child(self, _forget_late)
        self.last_error = ""

    def redis_key(self, key: str) -> str:
        """The Redis key holding *key*'s counts (a keyed digest of *key*)."""
        digest = hashlib.blake2b(
            key.encode("utf-8", "surrogatepass"), digest_size=16, key=self.store._digest_key
        )
        return self.prefix + digest.hexdigest()

    def packed(self, key: str, weight: int) -> list[bytes]:
        """The EVALSHA command for *key* and *weight*, encoded once and cached."""
        cache = self.commands
        if self.cached_epoch is not self.store.epoch:  # commands carry the epoch
            cache.clear()
            self.cached_epoch = self.store.epoch
        command = cache.get((key, weight))
        if command is None:
            name = self.redis_key(key).encode()
            count = str(weight).encode()
            marker = self.epoch_key.encode()
            epoch = self.store.epoch.encode()
            command = [
                b"%b$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$1\r\n0\r\n$%d\r\n%b\r\n"
                % (
                    self.command_head,
                    len(name),
                    name,
                    len(marker),
                    marker,
                    len(count),
                    count,
                    len(epoch),
                    epoch,
                )
            ]
            if len(cache) >= 4096:  # keys come from inputs: keep the cache bounded
                cache.clear()
            cache[key, weight] = command
        return command

    def acquire(self, key: str, weight: int) -> int:
        """Decide in one round trip; the failure policy if Redis cannot answer.

        The command goes straight to a pooled connection (encoded once per
        key and cached), skipping redis-py's per-command layers: this is the
        hot path of every shared decision.
        """
        if self.down_until and time.monotonic() < self.down_until:
            return self._degraded(key, weight)
        if self.lost_until and self._still_lost():
            return DEGRADED | DENY
        if not self.store.epoch and not self.failed:  # not learned yet (first contact failed)
            self.store.new_epoch()
        if self.late:
            self._collect_late()
        parked = False
        try:
            started = time.monotonic()
            pool = self.store.sync_client().connection_pool
            connection = pool.get_connection()
            # A connection set up (or waited for) just now used part of the
            # deadline: the reply gets what is left of it.
            spent = time.monotonic() - started
            if spent >= self.deadline:
                pool.release(connection)
                raise TimeoutError("no time left for the decision after connecting")
            try:
                connection.send_packed_command(self.packed(key, weight), check_health=False)
                if spent > SPENT_CONNECTING and not connection.can_read(
                    timeout=self.deadline - spent
                ):
                    raise self.timeouts("no reply within the deadline")
                reply = connection.read_response(disconnect_on_error=False)
            except self.timeouts:
                # Sent, and perhaps counted: keep the connection to read the late
                # reply, and give back what it counted (see _collect_late).
                parked = self._park(connection, key, weight, refund=self.policy != "open")
                if not parked:
                    connection.disconnect()
                raise
            except self.noscript:
                reply = self.store.sync_client().execute_command(
                    "EVAL",
                    self.decide_script,
                    2,
                    self.redis_key(key),
                    self.epoch_key,
                    weight,
                    0,
                    self.store.epoch,
                )
            except BaseException:
                connection.disconnect()
                raise
            finally:
                if not parked:
                    pool.release(connection)
            code = int(reply) & 7  # the rest is the server's clock (see _counted_at)
        except Exception as e:  # noqa: BLE001 - the failure policy decides instead
            return self._failed(e, key, weight)
        return self._answered(code)

    def _park(self, connection: Any, key: str, weight: int, *, refund: bool) -> bool:
        """Keep a timed-out decision's connection until its reply comes (a few at most).

        With *refund*, what the server counted is given back: the policy did
        not admit the action (or, under "local", counted it itself). Under
        "open" the action was taken: its late count stays.
        """
        with self.store._lock:
            if len(self.late) >= MAX_LATE:
                return False
            # The decision began about one deadline ago (the refund's margin covers the rest).
            mark = time.monotonic_ns() - round(self.deadline * 1e9)
            until = time.monotonic() + LATE_FOR
            self.late.append((connection, key, weight, mark, until, refund))
        return True

    def _collect_late(self) -> None:
        """Read the replies of timed-out decisions; refund those the server counted.

        A decision that timed out was decided by the failure policy; if the
        server counted it anyway, that count is given back, so a slow reply
        does not eat budget, unless the policy admitted it ("open"): an action
        taken stays counted. Never raises.
        """
        with self.store._lock:
            late, self.late = self.late, []
        pool = self.store.sync_client().connection_pool
        keep = []
        for entry in late:
            connection, key, weight, mark, give_up, refund = entry
            try:
                if not connection.can_read(timeout=0):
                    if time.monotonic() < give_up:
                        keep.append(entry)
                        continue
                    connection.disconnect()  # too late: the count stays (the safe side)
                    pool.release(connection)
                    continue
                reply = connection.read_response(disconnect_on_error=True)
            except Exception:  # noqa: BLE001 - a lost reply only leaves the count in place
                connection.disconnect()
                pool.release(connection)
                continue
            pool.release(connection)
            at = _counted_at(reply)
            if refund and at is not None:
                self.refund(key, weight, mark, at=at)
        if keep:
            with self.store._lock:
                self.late.extend(keep)

    async def acquire_async(self, key: str, weight: int) -> int:
        """:meth:`acquire` on the running loop's pipeline: the same script, deadline and policy.

        The decision waits for its reply up to the deadline from now,
        connection set-up included. If none came by then (or the caller is
        cancelled), the policy decides; the command stays in the pipeline,
        and if its late reply shows that the server counted it, the count is
        given back (see :meth:`_late`).
        """
        if self.down_until and time.monotonic() < self.down_until:
            return self._degraded(key, weight)
        if self.lost_until and self._still_lost():
            return DEGRADED | DENY
        try:
            pipeline = self.store.pipeline()
            expires = pipeline.loop.time() + self.deadline
            mark = time.monotonic_ns()
            try:
                reply = await self._ask(
                    pipeline, self.packed(key, weight), expires, key, weight, mark
                )
            except self.noscript:  # the server's scripts were flushed
                command = [pack("EVAL", self.decide_script, *self.decide_args(key, weight))]
                reply = await self._ask(pipeline, command, expires, key, weight, mark)
            code = int(reply) & 7
        except Exception as e:  # noqa: BLE001 - the failure policy decides instead
            return self._failed(e, key, weight)
        if code == LOST or self.failed:
            return self._answered(code, blocking=False)
        return code

    async def _ask(
        self,
        pipeline: Pipeline,
        command: list[bytes],
        expires: float,
        key: str,
        weight: int,
        mark: int,
    ) -> Any:
        """Submit one decision and wait for its reply (a cancelled caller's count is given back)."""
        import asyncio

        future = pipeline.submit(command, expires, self._late, (key, weight, mark, pipeline))
        assert future is not None
        try:
            return await future
        except asyncio.CancelledError:
            # Cancelled in the turn its reply came: the reply is in, nobody takes
            # the action, so what it counted is given back now.
            if future.done() and not future.cancelled() and future.exception() is None:
                at = _counted_at(future.result())
                if at is not None:
                    self._refund_on(pipeline, key, weight, mark, at)
            raise

    def decide_args(self, key: str, weight: int) -> tuple[Any, ...]:
        """The decide script's keys and arguments for *key* and *weight*."""
        return (2, self.redis_key(key), self.epoch_key, weight, 0, self.store.epoch)

    def _late(self, entry: Entry, reply: Any, error: BaseException | None) -> None:
        """A decision's reply came after the policy decided (time-out) or its caller left.

        If the server counted it, the count is given back, unless the policy
        admitted the action ("open" on a time-out): an action taken stays
        counted. A cancelled caller took no action. An error leaves the
        count, if any, in place (the safe side).
        """
        at = _counted_at(reply) if error is None else None
        if at is not None and (entry.cancelled or self.policy != "open"):
            # On the decision's own pipeline: aclose() may have taken it from
            # the store's map already, and waits for it.
            key, weight, mark, pipeline = entry.args
            self._refund_on(pipeline, key, weight, mark, at)

    def _answered(self, code: int, *, blocking: bool = True) -> int:
        """The decision's code after an answer; without *blocking* (on an event
        loop) Redis is written to in background tasks instead of in line."""
        if code == LOST:
            code = self._lost(blocking=blocking)
        if self.failed:  # read without the lock: the common case stays lock-free
            return self._recovered(code, blocking=blocking)
        return code

    def _recovered(self, code: int, *, blocking: bool = True) -> int:
        with self.store._lock:
            self.consecutive = 0
            # Of several threads answered at once, only one ends the outage.
            ended, self.failed = self.failed, False
            if ended:
                self.down_until = 0.0
        if ended and self.pending:
            if blocking:
                self._reconcile()
            else:
                with self.store._lock:
                    pending, self.pending = self.pending, {}
                self._reconcile_async(pending)
        return code | RECOVERED if ended else code

    def _lost(self, *, blocking: bool = True) -> int:
        """The counts were lost: adopt a new epoch; deny for a window unless told to reset."""
        if blocking:
            self.store.new_epoch()
        else:
            self.store.new_epoch_async()
        self.last_error = (
            "the shared counts were lost (Redis restarted without persistence, or "
            "evicted keys): "
            + (
                "counting afresh"
                if self.store.on_state_lost == "reset"
                else "denying until a full window has passed"
            )
        )
        if self.store.on_state_lost == "reset":
            return DEGRADED | DENY
        self.lost_until = time.monotonic() + self.max_per
        return DEGRADED | DENY

    def _still_lost(self) -> bool:
        if time.monotonic() < self.lost_until:
            return True
        self.lost_until = 0.0
        return False

    def _reconcile(self) -> None:
        """Count in Redis what this process admitted on its own (best effort)."""
        with self.store._lock:
            pending, self.pending = self.pending, {}
        try:
            client = self.store.sync_client()
            for key, weight in pending.items():
                name = self.redis_key(key)
                args = (2, name, self.epoch_key, weight, 1, "")
                try:
                    client.execute_command("EVALSHA", self.decide_sha, *args)
                except self.noscript:
                    client.execute_command("EVAL", self.decide_script, *args)
        except Exception as e:  # noqa: BLE001 - the held-back share still bounds the fleet
            self.last_error = _describe(e)

    def _reconcile_async(self, pending: dict[str, int]) -> None:
        """:meth:`_reconcile` through the running loop's pipeline (written after this turn).

        Nothing waits on it; an error is kept as ``last_error``. Best effort:
        what is not written back stays bounded by the held-back share.
        """
        pipeline = self.store.pipeline()
        for key, weight in pending.items():
            args = (2, self.redis_key(key), self.epoch_key, weight, 1, "")
            self._background(pipeline, self.decide_sha, self.decide_script, args)

    def _note(self, _: Entry, reply: Any, error: BaseException | None) -> None:
        """Keep a background command's error as ``last_error``."""
        if error is not None:
            self.last_error = _describe(error)

    def _failed(self, error: BaseException, key: str, weight: int) -> int:
        message = _describe(error)
        with self.store._lock:
            # Both together, so an answer in another thread sees an outage whole or not at all.
            self.last_error = message
            self.failed = True
            self.consecutive += 1
            # One slow reply decides only its own decision; trip_after in a row
            # send the next ones to the policy until the probe.
            if self.consecutive >= self.store.trip_after:
                self.down_until = time.monotonic() + self.store.probe_every
        return self._degraded(key, weight)

    def _degraded(self, key: str, weight: int) -> int:
        if self.policy == "closed":
            return DEGRADED | DENY
        if self.policy == "open":
            return DEGRADED
        local = self.local
        if local is None:  # nothing held back for this process: deny
            return DEGRADED | DENY
        code = local.acquire(key, weight)
        if not code & DENY:
            pending = self.pending
            with self.store._lock:
                if key in pending or len(pending) < MAX_PENDING:
                    pending[key] = pending.get(key, 0) + weight
        return code | DEGRADED

    def mark(self) -> int:
        """A local clock reading to take before :meth:`acquire`, for a later :meth:`refund`."""
        return time.monotonic_ns()

    def refund(self, key: str, weight: int, mark: int, *, at: int | None = None) -> None:
        """Give back *weight* counted in Redis for *key* by an acquire begun at *mark*.

        *at*: the server's clock when it counted, from a late reply (the
        count then leaves exactly its sub-window). Best effort and never
        raises: a refund that fails or finds Redis down leaves the count in
        place (the safe side of the guarantee).
        """
        if at is None and self.down_until and time.monotonic() < self.down_until:
            return
        args = self._refund_args(key, weight, mark, at)
        try:
            client = self.store.sync_client()
            try:
                client.execute_command("EVALSHA", self.refund_sha, *args)
            except self.noscript:
                client.execute_command("EVAL", self.refund_script, *args)
        except Exception as e:  # noqa: BLE001 - a refund is best effort
            self.last_error = _describe(e)

    def _refund_args(self, key: str, weight: int, mark: int, at: int | None) -> tuple[Any, ...]:
        # Redis decides on its own clock: the decision began at most this long
        # ago there, counting the reply's way back (bounded by the deadline).
        age_us = (time.monotonic_ns() - mark) // 1000 + round(self.deadline * 1e6) + 1000
        args: tuple[Any, ...] = (1, self.redis_key(key), weight, age_us)
        return args if at is None else (*args, at)

    async def refund_async(self, key: str, weight: int, mark: int) -> None:
        """:meth:`refund` through the running loop's pipeline; does not wait for the reply.

        The refund is written after this turn of the loop, ahead of any later
        decision, and its age is taken when it is written.
        """
        try:
            self._refund_on(self.store.pipeline(), key, weight, mark, None)
        except Exception as e:  # noqa: BLE001 - a refund is best effort
            self.last_error = _describe(e)

    def _refund_on(
        self, pipeline: Pipeline, key: str, weight: int, mark: int, at: int | None
    ) -> None:
        self._background(
            pipeline,
            self.refund_sha,
            self.refund_script,
            lambda: self._refund_args(key, weight, mark, at),
        )

    def _background(
        self,
        pipeline: Pipeline,
        sha: str,
        script: str,
        args: tuple[Any, ...] | Callable[[], tuple[Any, ...]],
        *,
        by_sha: bool = True,
    ) -> None:
        """Submit a script that nobody waits for (*args* as a function: made when written).

        If the server's scripts were flushed (NOSCRIPT), it is sent again
        with its source, once; any other error is kept as ``last_error``.
        """

        def command() -> list[bytes]:
            made = args() if callable(args) else args
            if by_sha:
                return [pack("EVALSHA", sha, *made)]
            return [pack("EVAL", script, *made)]

        def done(entry: Entry, reply: Any, error: BaseException | None) -> None:
            if by_sha and isinstance(error, self.noscript):
                self._background(pipeline, sha, script, args, by_sha=False)
            else:
                self._note(entry, reply, error)

        pipeline.submit(command, late=done, wait=False)

    def peek(self, key: str) -> tuple[int, float]:
        """Remaining budget and seconds until all counted actions expire."""
        try:
            client = self.store.sync_client()
            name = self.redis_key(key)
            try:
                reply = client.execute_command("EVALSHA", self.peek_sha, 1, name)
            except self.noscript:
                reply = client.execute_command("EVAL", self.peek_script, 1, name)
            return int(reply[0]), int(reply[1]) / 1e6
        except Exception as e:  # noqa: BLE001 - inspection answers from the policy
            self.last_error = _describe(e)
            if self.local is not None:
                return self.local.peek(key)
            if self.policy == "open":
                return min(w.max_actions for w in self.windows), 0.0
            return 0, self.store.probe_every

    def clear(self, key: str) -> None:
        """Forget *key*'s counts."""
        self.store.sync_client().delete(self.redis_key(key))
