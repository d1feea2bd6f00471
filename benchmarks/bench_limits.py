"""Action limits: decision cost in memory and through Redis, next to the peers.

Run: ``python benchmarks/bench_limits.py`` (needs the ``bench`` extra for the
peers, ``limits`` and ``pyrate-limiter``; the Redis section starts a
``redis-server`` on a free loopback port if one is installed).

Peers are configured the way their documentation shows for in-process use:
``limits`` with ``MemoryStorage`` (fixed and moving window) and
``pyrate-limiter`` with an ``InMemoryBucket``; every limiter is asked for a
non-blocking decision.
"""

from __future__ import annotations

import functools
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Suite, machine

import guardrail as gr

HOUR = 3600
BIG = 10**9  # a cap no benchmark reaches: the allow path


def peers_allow(suite: Suite, number: int) -> None:
    from limits import RateLimitItemPerHour, storage, strategies
    from pyrate_limiter import Duration, InMemoryBucket, Limiter, Rate

    item = RateLimitItemPerHour(BIG)
    fixed = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
    moving = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
    pyrate = Limiter(InMemoryBucket([Rate(BIG, Duration.HOUR)]))
    suite.time("limits fixed window, allow", functools.partial(fixed.hit, item, "m"), number=number)
    suite.time(
        "limits moving window, allow",
        functools.partial(moving.hit, item, "m"),
        number=number // 4,
        baseline="limits fixed window, allow",
    )
    suite.time(
        "pyrate-limiter, allow",
        functools.partial(pyrate.try_acquire, "m", blocking=False),
        number=number // 4,
        baseline="limits fixed window, allow",
    )
    pyrate.dispose(pyrate.buckets()[0]) if hasattr(pyrate, "dispose") else None


def memory_allow(suite: Suite, number: int) -> None:
    gr.configure(hooks=[])
    suite.time("empty function call", lambda: None, number=number)
    unkeyed = gr.ActionLimit("bench", max_actions=BIG, per=HOUR)
    keyed = gr.ActionLimit("bench", max_actions=BIG, per=HOUR, key=lambda m: m)
    suite.time(
        "guardrail allow(), memory",
        unkeyed.allow,
        number=number,
        baseline="limits fixed window, allow",
    )
    suite.time(
        "guardrail allow(key), memory",
        functools.partial(keyed.allow, "merchant-42"),
        number=number,
        baseline="limits fixed window, allow",
    )
    two = gr.ActionLimit("bench", windows=[gr.Window(BIG, "1m"), gr.Window(BIG, "1d")])
    suite.time(
        "guardrail allow(), two windows",
        two.allow,
        number=number,
        baseline="limits fixed window, allow",
    )

    def block_card(merchant: str) -> None:
        return None

    guarded = keyed.guard(block_card)
    suite.time("bare action function", functools.partial(block_card, "m-1"), number=number)
    suite.time(
        "@limit.guard action function (key function)",
        functools.partial(guarded, "m-1"),
        number=number,
        baseline="bare action function",
    )


def deny_path(suite: Suite, number: int) -> None:
    from limits import RateLimitItemPerHour, storage, strategies
    from pyrate_limiter import Duration, InMemoryBucket, Limiter, Rate

    one = gr.ActionLimit("bench", max_actions=1, per=HOUR)
    one.allow()
    suite.time(
        "guardrail deny, memory",
        one.allow,
        number=number,
        baseline="guardrail allow(), memory",
    )
    item = RateLimitItemPerHour(1)
    fixed = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
    moving = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
    fixed.hit(item, "m")
    moving.hit(item, "m")
    suite.time(
        "limits fixed window, deny",
        functools.partial(fixed.hit, item, "m"),
        number=number,
        baseline="guardrail deny, memory",
    )
    suite.time(
        "limits moving window, deny",
        functools.partial(moving.hit, item, "m"),
        number=number // 4,
        baseline="guardrail deny, memory",
    )
    pyrate = Limiter(InMemoryBucket([Rate(1, Duration.HOUR)]))
    pyrate.try_acquire("m", blocking=False)
    suite.time(
        "pyrate-limiter, deny",
        functools.partial(pyrate.try_acquire, "m", blocking=False),
        number=number // 4,
        baseline="guardrail deny, memory",
    )


def million(suite: Suite, number: int) -> None:
    """The allow path with 1,000,000 actions already counted inside the window."""
    from limits import RateLimitItemPerHour, storage, strategies
    from pyrate_limiter import Duration, InMemoryBucket, Limiter, Rate

    limit = gr.ActionLimit("bench", max_actions=BIG, per=HOUR)
    for _ in range(1_000_000):
        limit.allow()
    suite.time(
        "guardrail allow(), 1M in window",
        limit.allow,
        number=number,
        baseline="guardrail allow(), memory",
    )
    item = RateLimitItemPerHour(BIG)
    fixed = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
    fixed.hit(item, "m", cost=1_000_000)
    suite.time(
        "limits fixed window, 1M in window",
        functools.partial(fixed.hit, item, "m"),
        number=number,
        baseline="limits fixed window, allow",
    )
    moving = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
    moving.hit(item, "m", cost=1_000_000)
    suite.time(
        "limits moving window, 1M in window",
        functools.partial(moving.hit, item, "m"),
        number=max(1, number // 200),
        repeat=5,
        baseline="limits moving window, allow",
    )
    pyrate = Limiter(InMemoryBucket([Rate(BIG, Duration.HOUR)]))
    for _ in range(10):
        pyrate.try_acquire("m", weight=100_000, blocking=False)
    suite.time(
        "pyrate-limiter, 1M in window",
        functools.partial(pyrate.try_acquire, "m", blocking=False),
        number=max(1, number // 200),
        repeat=5,
        baseline="pyrate-limiter, allow",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_section(suite: Suite, number: int) -> None:
    executable = shutil.which("redis-server")
    if executable is None:
        print("redis-server not found: Redis figures skipped", file=sys.stderr)
        return
    import redis

    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    server = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(500):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.01)
        store = gr.RedisStore(client, namespace="bench", deadline=0.5)
        own = store.sync_client()  # the store's own pool: same connection settings
        limit = gr.ActionLimit("bench", max_actions=BIG, per=HOUR, store=store)
        keyed = gr.ActionLimit("bench-keyed", max_actions=BIG, per=HOUR, store=store)
        one = gr.ActionLimit("bench-deny", max_actions=1, per=HOUR, store=store)
        one.allow()
        raw = own.connection_pool
        ping = [b"*1\r\n$4\r\nPING\r\n"]

        def raw_ping() -> object:
            # PING through the same pooled-connection path the decision uses.
            connection = raw.get_connection()
            try:
                connection.send_packed_command(ping, check_health=False)
                return connection.read_response()
            finally:
                raw.release(connection)

        cases = {
            "Redis PING (redis-py)": (own.ping, None),
            "Redis PING (raw, same path as a decision)": (raw_ping, None),
            "guardrail allow(), Redis": (limit.allow, "Redis PING (redis-py)"),
            "guardrail allow(key), Redis": (
                functools.partial(keyed.allow, "merchant-42"),
                "Redis PING (redis-py)",
            ),
            "guardrail deny, Redis": (one.allow, "Redis PING (redis-py)"),
        }
        # Round-robin rounds: a loopback round trip drifts with the machine's load,
        # so each case is timed between the others rather than one after the other.
        rounds: dict[str, list[float]] = {name: [] for name in cases}
        for fn, _ in cases.values():
            fn()
        for _ in range(21):
            for name, (fn, _) in cases.items():
                start = time.perf_counter()
                for _ in range(number):
                    fn()
                rounds[name].append((time.perf_counter() - start) / number)
        for name, (_, baseline) in cases.items():
            suite.add(name, statistics.median(rounds[name]), baseline=baseline)
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    """Print the figures as markdown tables."""
    number = 20_000
    memory = Suite("Action limits in memory (per decision)")
    peers_allow(memory, number)
    memory_allow(memory, number)
    deny_path(memory, number)
    million(memory, number)
    remote = Suite("Action limits through Redis (per decision, loopback)")
    redis_section(remote, 200)
    print(machine())
    print()
    print(memory.table())
    print()
    if remote.results:
        print(remote.table())
        ping = remote.get("Redis PING (redis-py)").seconds
        raw = remote.get("Redis PING (raw, same path as a decision)").seconds
        print()
        for name in ("guardrail allow(), Redis", "guardrail allow(key), Redis"):
            over = remote.get(name).seconds
            print(
                f"{name} minus PING: {(over - ping) * 1e6:+.1f} µs (redis-py PING), "
                f"{(over - raw) * 1e6:+.1f} µs (raw PING)"
            )


if __name__ == "__main__":
    main()
