"""The Redis store: action limits shared by processes and replicas.

One decision is one round trip: an ``EVALSHA`` of a Lua script that reads the
Redis server's clock (``TIME``), checks every window and counts the action,
atomically. The counting is the same sub-window algorithm as the in-memory
store (see ``docs/limits.md``), kept in one hash per limit key.

``redis`` is imported when a :class:`RedisStore` is made, never by
``import guardrail``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from typing import Any, Literal

from ._errors import ConfigError
from ._limits import (
    _NAME,
    DEGRADED,
    DENY,
    RECOVERED,
    MemoryCounter,
    Window,
)

__all__ = ["RedisStore"]

OnStoreError = Literal["closed", "open", "local"]

# KEYS[1]: the limit key's hash.  ARGV: weight, number of windows, then per
# window: sub-window width (µs), sub-windows kept (buckets + 1), max, near count.
# Fields: "<window>:<sub-window>" -> count, "a<window>" -> sub-window of the
# last exceeded alert. Codes as in _limits: 0 allow, 1 near, 2 deny, 3 first deny.
_DECIDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local weight = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local fields = redis.call('HGETALL', KEYS[1])
local cur, first, total, ttl = {}, {}, {}, 0
for i = 1, n do
  local base = 2 + (i - 1) * 4
  local width, slots = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  cur[i] = math.floor(now / width)
  first[i] = cur[i] - slots + 1
  total[i] = 0
  if width * slots > ttl then ttl = width * slots end
end
local stale, alerts = {}, {}
for j = 1, #fields, 2 do
  local f = fields[j]
  local i, b = string.match(f, '^(%d+):(%d+)$')
  if i then
    i, b = tonumber(i), tonumber(b)
    -- A sub-window ahead of the clock (a server clock that went back) still counts.
    if i <= n and b >= first[i] then
      total[i] = total[i] + tonumber(fields[j + 1])
    else
      stale[#stale + 1] = f
    end
  else
    alerts[f] = tonumber(fields[j + 1])
  end
end
local ttl_ms = math.ceil(ttl / 1000) + 1
for i = 1, n do
  if total[i] + weight > tonumber(ARGV[2 + (i - 1) * 4 + 3]) then
    local af = 'a' .. i
    if alerts[af] == cur[i] then return 2 end
    redis.call('HSET', KEYS[1], af, string.format('%d', cur[i]))
    redis.call('PEXPIRE', KEYS[1], ttl_ms)
    return 3
  end
end
local code = 0
for i = 1, n do
  redis.call('HINCRBY', KEYS[1], string.format('%d:%d', i, cur[i]), weight)
  local near = tonumber(ARGV[2 + (i - 1) * 4 + 4])
  if total[i] < near and total[i] + weight >= near then code = 1 end
end
if #stale > 0 then redis.call('HDEL', KEYS[1], unpack(stale)) end
redis.call('PEXPIRE', KEYS[1], ttl_ms)
return code
"""

# Same KEYS/ARGV (weight ignored); returns {remaining, µs until all expired}.
_PEEK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[2])
local fields = redis.call('HGETALL', KEYS[1])
local remaining, reset = nil, 0
for i = 1, n do
  local base = 2 + (i - 1) * 4
  local width, slots = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local cur = math.floor(now / width)
  local total, newest = 0, nil
  for j = 1, #fields, 2 do
    local wi, b = string.match(fields[j], '^(%d+):(%d+)$')
    if wi and tonumber(wi) == i then
      b = tonumber(b)
      if b > cur - slots then
        total = total + tonumber(fields[j + 1])
        if newest == nil or b > newest then newest = b end
      end
    end
  end
  local left = tonumber(ARGV[base + 3]) - total
  if left < 0 then left = 0 end
  if remaining == nil or left < remaining then remaining = left end
  if newest ~= nil then
    local r = (newest + slots) * width - now
    if r > reset then reset = r end
  end
end
return {remaining, reset}
"""

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
            process against ``local_share`` of each window's cap).
        local_share: The fraction of each window's ``max_actions`` one
            process may use on its own while Redis is unreachable.
        probe_every: After a failure, decisions skip Redis (and use the
            policy at once) for this many seconds, then try it again: the
            limit recovers by itself when Redis is back.

    Keys are ``guardrail:<namespace>:<limit>:<digest>``: the key function's
    output is hashed (BLAKE2b, 128 bits), so it can neither collide with
    another limit's keys nor escape the namespace, whatever it contains.
    """

    def __init__(
        self,
        client: Any,
        *,
        namespace: str = "default",
        deadline: float = 0.005,
        on_store_error: OnStoreError = "closed",
        local_share: float = 1.0,
        probe_every: float = 0.1,
    ) -> None:
        try:
            import redis
            import redis.asyncio
        except ImportError as e:  # pragma: no cover - the extra is installed in tests
            raise ConfigError("RedisStore needs redis: pip install 'guardrail[redis]'") from e
        if not isinstance(namespace, str) or not _NAME.match(namespace):
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
        self.probe_every = float(probe_every)
        self._settings = settings
        self._sync_class = sync_class
        self._async_class = async_class
        self._lock = threading.Lock()
        self._sync: Any = None
        self._async: dict[int, tuple[Any, Any]] = {}

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
                    self._sync = redis.Redis(connection_pool=pool)
                client = self._sync
        return client

    def async_client(self) -> Any:
        """The store's own ``redis.asyncio.Redis`` for the running event loop."""
        loop = asyncio.get_running_loop()
        held = self._async.get(id(loop))
        if held is not None and held[0] is loop:
            return held[1]
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        pool = redis.asyncio.ConnectionPool(
            connection_class=self._async_class, **self._timeouts(Retry(NoBackoff(), 0))
        )
        client = redis.asyncio.Redis(connection_pool=pool)
        # One client per loop: asyncio connections cannot move between loops.
        self._async = {k: v for k, v in self._async.items() if not v[0].is_closed()}
        self._async[id(loop)] = (loop, client)
        return client

    async def aclose(self) -> None:
        """Close the async connections of the running event loop (await before it ends)."""
        held = self._async.pop(id(asyncio.get_running_loop()), None)
        if held is not None:
            await held[1].aclose()
            await held[1].connection_pool.disconnect()

    def close(self) -> None:
        """Close the sync connections (they reopen on the next decision)."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()
            client.connection_pool.disconnect()

    def bind(self, name: str, windows: tuple[Window, ...], near: float) -> RedisCounter:
        """The counter for one limit."""
        return RedisCounter(self, name, windows, near)

    def __repr__(self) -> str:
        return (
            f"RedisStore(namespace={self.namespace!r}, deadline={self.deadline}, "
            f"on_store_error={self.on_store_error!r})"
        )


def _sha1(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


class RedisCounter:
    """One limit's counts in Redis, with the store's failure policy."""

    def __init__(
        self, store: RedisStore, name: str, windows: tuple[Window, ...], near: float
    ) -> None:
        self.store = store
        self.windows = windows
        self.prefix = f"guardrail:{store.namespace}:{name}:"
        self.deadline = store.deadline
        self.policy = store.on_store_error
        args: list[int] = [len(windows)]
        for w in windows:
            width_us = -(-round(w.per * 1e6) // w.buckets)
            args += [
                width_us,
                w.buckets + 1,
                w.max_actions,
                max(1, math.ceil(w.max_actions * near)),
            ]
        self.args = tuple(args)
        self.decide_sha = _sha1(_DECIDE)
        self.peek_sha = _sha1(_PEEK)
        from redis.exceptions import NoScriptError

        self.noscript = NoScriptError
        self.local: MemoryCounter | None = None
        if self.policy == "local":
            share = store.local_share
            local = tuple(
                Window(max(1, math.floor(w.max_actions * share)), w.per, buckets=w.buckets)
                for w in windows
            )
            self.local = MemoryCounter(local, near, time.monotonic_ns)
        self.down_until = 0.0
        self.failed = False
        self.last_error = ""

    def redis_key(self, key: str) -> str:
        """The Redis key holding *key*'s counts."""
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16)
        return self.prefix + digest.hexdigest()

    def acquire(self, key: str, weight: int) -> int:
        """Decide in one round trip; the failure policy if Redis cannot answer."""
        if self.down_until and time.monotonic() < self.down_until:
            return self._degraded(key, weight)
        try:
            client = self.store.sync_client()
            name = self.redis_key(key)
            try:
                code = int(
                    client.execute_command("EVALSHA", self.decide_sha, 1, name, weight, *self.args)
                )
            except self.noscript:
                code = int(client.execute_command("EVAL", _DECIDE, 1, name, weight, *self.args))
        except Exception as e:  # noqa: BLE001 - the failure policy decides instead
            return self._failed(e, key, weight)
        return self._answered(code)

    async def acquire_async(self, key: str, weight: int) -> int:
        """:meth:`acquire` with redis.asyncio, bounded by the deadline."""
        if self.down_until and time.monotonic() < self.down_until:
            return self._degraded(key, weight)
        try:
            client = self.store.async_client()
            name = self.redis_key(key)
            async with asyncio.timeout(self.deadline):
                try:
                    reply = await client.execute_command(
                        "EVALSHA", self.decide_sha, 1, name, weight, *self.args
                    )
                except self.noscript:
                    reply = await client.execute_command(
                        "EVAL", _DECIDE, 1, name, weight, *self.args
                    )
            code = int(reply)
        except Exception as e:  # noqa: BLE001 - the failure policy decides instead
            return self._failed(e, key, weight)
        return self._answered(code)

    def _answered(self, code: int) -> int:
        if self.failed:
            self.failed = False
            self.down_until = 0.0
            return code | RECOVERED
        return code

    def _failed(self, error: BaseException, key: str, weight: int) -> int:
        self.last_error = f"{type(error).__name__}: {error}"[:200]
        self.failed = True
        self.down_until = time.monotonic() + self.store.probe_every
        return self._degraded(key, weight)

    def _degraded(self, key: str, weight: int) -> int:
        if self.policy == "closed":
            return DEGRADED | DENY
        if self.policy == "open":
            return DEGRADED
        assert self.local is not None
        return self.local.acquire(key, weight) | DEGRADED

    def peek(self, key: str) -> tuple[int, float]:
        """Remaining budget and seconds until all counted actions expire."""
        try:
            client = self.store.sync_client()
            name = self.redis_key(key)
            try:
                reply = client.execute_command("EVALSHA", self.peek_sha, 1, name, 0, *self.args)
            except self.noscript:
                reply = client.execute_command("EVAL", _PEEK, 1, name, 0, *self.args)
            return int(reply[0]), int(reply[1]) / 1e6
        except Exception as e:  # noqa: BLE001 - inspection answers from the policy
            self.last_error = f"{type(e).__name__}: {e}"[:200]
            if self.local is not None:
                return self.local.peek(key)
            if self.policy == "open":
                return min(w.max_actions for w in self.windows), 0.0
            return 0, self.store.probe_every

    def clear(self, key: str) -> None:
        """Forget *key*'s counts."""
        self.store.sync_client().delete(self.redis_key(key))
