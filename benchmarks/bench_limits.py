"""Action limits: decision cost in memory and through Redis, next to the peers.

Run: ``python benchmarks/bench_limits.py`` (the peers come with the ``bench``
extra: ``limits`` and ``pyrate-limiter``; the Redis section starts a
``redis-server`` on a free loopback port when one is installed).

Peers are set up the way their documentation shows for in-process use:
``limits`` with ``MemoryStorage`` (fixed and moving window), ``pyrate-limiter``
with an ``InMemoryBucket``; every limiter is asked for a non-blocking decision.

The machine is shared, so the cases of a section are timed in round-robin
rounds (each round times every case once) and the median round is kept: a
burst of load then slows every case of a round, not one case of the table.
"""

from __future__ import annotations

import functools
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from _harness import CPU, Suite, machine

import guardrail as gr

HOUR = 3600
BIG = 10**9  # a cap no benchmark reaches: the allow path
MILLION = 1_000_000

Case = tuple[str, Callable[[], object], int, str | None]  # name, fn, calls a round, baseline


def interleaved(suite: Suite, cases: list[Case], rounds: int = 15) -> None:
    """Time *cases* round-robin (see ``_harness.py``), each against its baseline."""
    suite.group(cases, rounds=max(1, rounds // 3))


def peers(cap: int, recorded: int = 0) -> dict[str, Callable[[], object]]:
    """The peers' decision for one key at *cap* an hour, *recorded* actions already in."""
    from limits import RateLimitItemPerHour, storage, strategies
    from pyrate_limiter import Duration, InMemoryBucket, Limiter, Rate

    item = RateLimitItemPerHour(cap)
    fixed = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
    moving = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
    pyrate = Limiter(InMemoryBucket([Rate(cap, Duration.HOUR)]))
    if recorded:  # as cost/weight: recording them one by one would take minutes
        fixed.hit(item, "m", cost=recorded)
        moving.hit(item, "m", cost=recorded)
        for _ in range(10):
            pyrate.try_acquire("m", weight=recorded // 10, blocking=False)
    return {
        "limits fixed window": functools.partial(fixed.hit, item, "m"),
        "limits moving window": functools.partial(moving.hit, item, "m"),
        "pyrate-limiter": functools.partial(pyrate.try_acquire, "m", blocking=False),
    }


def memory_section(suite: Suite) -> None:
    gr.configure(hooks=[])
    unkeyed = gr.ActionLimit("bench", max_actions=BIG, per=HOUR)
    keyed = gr.ActionLimit("bench", max_actions=BIG, per=HOUR, key=lambda m: m)
    two = gr.ActionLimit(
        "bench", windows=[gr.limits.Window(BIG, "1m"), gr.limits.Window(BIG, "1d")]
    )

    def block_card(merchant: str) -> None:
        return None

    guarded = keyed.guard(block_card)
    denying = gr.ActionLimit("bench", max_actions=1, per=HOUR)
    denying.allow()
    full = gr.ActionLimit("bench", max_actions=BIG, per=HOUR)
    for _ in range(MILLION):
        full.allow()

    allow, deny, million = peers(BIG), peers(1), peers(BIG, recorded=MILLION)
    for fn in deny.values():
        fn()

    fixed = "limits fixed window, allow"
    ours = "guardrail allow(), memory"
    cases: list[Case] = [
        ("empty function call", lambda: None, 2000, None),
        (fixed, allow["limits fixed window"], 500, None),
        ("limits moving window, allow", allow["limits moving window"], 200, fixed),
        ("pyrate-limiter, allow", allow["pyrate-limiter"], 200, fixed),
        (ours, unkeyed.allow, 2000, fixed),
        ("guardrail allow(key), memory", functools.partial(keyed.allow, "m-42"), 2000, fixed),
        ("guardrail allow(), two windows", two.allow, 2000, fixed),
        ("bare action function", functools.partial(block_card, "m-1"), 2000, None),
        ("@limit.guard action (key function)", functools.partial(guarded, "m-1"), 2000, fixed),
        ("guardrail deny, memory", denying.allow, 2000, ours),
        ("limits fixed window, deny", deny["limits fixed window"], 500, "guardrail deny, memory"),
        ("limits moving window, deny", deny["limits moving window"], 500, "guardrail deny, memory"),
        ("pyrate-limiter, deny", deny["pyrate-limiter"], 200, "guardrail deny, memory"),
        ("guardrail allow(), 1M in window", full.allow, 2000, ours),
        ("limits fixed window, 1M in window", million["limits fixed window"], 500, fixed),
        (
            "limits moving window, 1M in window",
            million["limits moving window"],
            3,
            "limits moving window, allow",
        ),
        ("pyrate-limiter, 1M in window", million["pyrate-limiter"], 100, "pyrate-limiter, allow"),
    ]
    interleaved(suite, cases)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_section(suite: Suite) -> None:
    executable = shutil.which("redis-server")
    if executable is None:
        print("redis-server not found: Redis figures skipped", file=sys.stderr)
        return
    import redis

    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    flags = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen([executable, *flags, "--dir", workdir], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(500):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.01)
        store = gr.RedisStore(client, namespace="bench", deadline=0.5)
        own = store.sync_client()  # the store's own pool: the decisions' connection settings
        limit = gr.ActionLimit("bench", max_actions=BIG, per=HOUR, store=store)
        keyed = gr.ActionLimit("bench-keyed", max_actions=BIG, per=HOUR, store=store)
        denying = gr.ActionLimit("bench-deny", max_actions=1, per=HOUR, store=store)
        denying.allow()
        pool = own.connection_pool
        ping = [b"*1\r\n$4\r\nPING\r\n"]

        def raw_ping() -> Any:
            # PING through the pooled-connection path a decision takes.
            connection = pool.get_connection()
            try:
                connection.send_packed_command(ping, check_health=False)
                return connection.read_response()
            finally:
                pool.release(connection)

        plain = "Redis PING (redis-py)"
        cases: list[Case] = [
            (plain, own.ping, 100, None),
            ("Redis PING (raw, the decision's path)", raw_ping, 100, None),
            ("guardrail allow(), Redis", limit.allow, 100, plain),
            ("guardrail allow(key), Redis", functools.partial(keyed.allow, "m-42"), 100, plain),
            ("guardrail deny, Redis", denying.allow, 100, plain),
        ]
        interleaved(suite, cases, rounds=31)
        stats = own.info("commandstats")
        server_us = stats.get("cmdstat_evalsha", {}).get("usec_per_call")
        suite.get("guardrail allow(), Redis").note = f"script: {server_us} µs on the server"
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    """Print the figures as markdown tables."""
    memory = Suite("Action limits in memory (per decision)", clock=CPU)
    memory_section(memory)
    remote = Suite("Action limits through Redis (per decision, loopback)")
    redis_section(remote)
    print(machine())
    print()
    print(memory.table())
    if remote.results:
        print()
        print(remote.table())
        print()
        plain = remote.get("Redis PING (redis-py)").seconds
        raw = remote.get("Redis PING (raw, the decision's path)").seconds
        for name in ("guardrail allow(), Redis", "guardrail allow(key), Redis"):
            decision = remote.get(name).seconds
            print(
                f"- {name}: PING {(decision - plain) * 1e6:+.1f} µs (redis-py PING), "
                f"{(decision - raw) * 1e6:+.1f} µs (raw PING)"
            )


if __name__ == "__main__":
    main()
