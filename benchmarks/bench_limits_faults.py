"""Action limits through Redis under faults: decision latency, exactness, event-loop stall.

Run: ``python benchmarks/bench_limits_faults.py`` (about a minute; starts its
own ``redis-server`` on a free loopback port). Prints markdown:

1. What a healthy decision costs over a raw PING of the same client kind,
   timed round-robin (ratios per round, so machine load moves both alike).
2. Latency of one decision with the default 5 ms deadline, sync
   (``allow``) and async (``allow_async``): healthy; while the server is
   stopped (SIGSTOP) 50 ms of every 200 ms; while it is busy (``DEBUG SLEEP
   0.05``) every 200 ms; while it is killed and restarted every 0.4 s. The
   target is p99 within the deadline + 1 ms on an idle machine. Each fault
   row also shows whether what the server counted equals what was admitted
   once late replies are settled (decisions that timed out but were counted
   are given back).
3. The longest event-loop stall while 1,000 concurrent ``async def`` guarded
   calls with a keyed limit run: memory store, Redis, and Redis stopped for
   1 s mid-run (a blocking client would stall the loop for that second).
4. Bursts of 10, 100 and 1,000 concurrent decisions on a brand-new event
   loop (its connection not yet open), then again on the same loop: how
   many the default 5 ms deadline leaves to the failure policy. A burst
   larger than the server can answer within the deadline (about 10 µs of
   script a decision, one at a time) is degraded in part on any loop.

The load average is printed with each part: figures taken on a busy machine
carry its noise, mostly in the tails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

import guardrail as gr
from guardrail.limits import RedisStore

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Suite, machine

CAP = 10**9
DEADLINE = 0.005  # RedisStore's default
SECONDS = 3.0  # per latency row
MODEL = gr.ModelRef(name="bench", version="1")
THRESHOLD = gr.Threshold(0.5, scale=gr.Probability, model=MODEL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One redis-server that can be stopped, made busy, killed and restarted."""

    def __init__(self, executable: str) -> None:
        self.executable, self.port = executable, free_port()
        self.workdir = tempfile.mkdtemp(prefix="bench-faults-")
        self.process = self.start()

    def start(self) -> subprocess.Popen[bytes]:
        flags = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        flags += ["--appendonly", "no", "--enable-debug-command", "local"]
        process = subprocess.Popen(
            [self.executable, *flags, "--dir", self.workdir], stdout=subprocess.DEVNULL
        )
        client = redis.Redis(host="127.0.0.1", port=self.port)
        for _ in range(500):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.01)
        return process

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def row(name: str, samples: list[float], extra: str) -> str:
    samples = sorted(samples)
    p50 = samples[len(samples) // 2]
    p99 = samples[int(len(samples) * 0.99)]
    within = "yes" if p99 <= DEADLINE + 0.001 else "no"
    return (
        f"| {name} | {len(samples)} | {p50 * 1e3:.2f} ms | {p99 * 1e3:.2f} ms | "
        f"{samples[-1] * 1e3:.2f} ms | {within} | {extra} |"
    )


def fault(server: Server, kind: str) -> Callable[[threading.Event], None]:
    """A loop that applies *kind* of fault until the event is set."""
    busy = server.client()

    def flap(stop: threading.Event) -> None:
        while not stop.is_set():
            if kind == "stop":
                server.process.send_signal(signal.SIGSTOP)
                time.sleep(0.05)
                server.process.send_signal(signal.SIGCONT)
                time.sleep(0.15)
            elif kind == "sleep":
                busy.execute_command("DEBUG", "SLEEP", "0.05")  # type: ignore[no-untyped-call]
                time.sleep(0.15)
            else:
                server.process.kill()
                server.process.wait()
                time.sleep(0.1)
                server.process = server.start()
                time.sleep(0.3)

    return flap


def under(server: Server, kind: str | None, measure: Callable[[], list[float]]) -> list[float]:
    if kind is None:
        return measure()
    stop = threading.Event()
    thread = threading.Thread(target=fault(server, kind), args=(stop,))
    thread.start()
    try:
        return measure()
    finally:
        stop.set()
        thread.join()
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)


def timed_sync(limit: gr.ActionLimit, key: str, admitted: list[int]) -> list[float]:
    out = []
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        t = time.perf_counter()
        admitted[0] += limit.allow(key)
        out.append(time.perf_counter() - t)
        time.sleep(0.0005)
    return out


def timed_async(limit: gr.ActionLimit, key: str, admitted: list[int]) -> list[float]:
    async def run() -> list[float]:
        out = []
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            t = time.perf_counter()
            admitted[0] += await limit.allow_async(key)
            out.append(time.perf_counter() - t)
            await asyncio.sleep(0.0005)
        await settle_async(limit, key, admitted[0])
        await limit_store(limit).aclose()
        return out

    return asyncio.run(run())


def limit_store(limit: gr.ActionLimit) -> RedisStore:
    store = limit.store
    assert isinstance(store, RedisStore)
    return store


def counted(limit: gr.ActionLimit, key: str) -> int:
    """What the server holds for *key*, read with a roomy deadline (the machine may be busy)."""
    store = limit_store(limit)
    reader = RedisStore(store.sync_client(), namespace=store.namespace, deadline=2.0)
    return CAP - gr.ActionLimit(limit.name, max_actions=CAP, per="1h", store=reader).remaining(key)


async def settle_async(limit: gr.ActionLimit, key: str, admitted: int) -> None:
    """Wait (up to 6 s) for late replies and their refunds to land."""
    end = time.monotonic() + 6
    while time.monotonic() < end and counted(limit, key) != admitted:
        await asyncio.sleep(0.05)


def settle_sync(limit: gr.ActionLimit, key: str, admitted: int) -> None:
    """Wait for late replies; a later decision (on another key) reads and refunds them."""
    end = time.monotonic() + 6
    while time.monotonic() < end and counted(limit, key) != admitted:
        time.sleep(0.05)
        limit.allow("settle")


def latency(server: Server) -> list[str]:
    """Part 2: percentiles per scenario, sync and async, and the settled counts."""
    lines = [
        "| decision (deadline 5 ms) | n | p50 | p99 | max | p99 ≤ 6 ms | counted - admitted |",
        "| --- | ---: | ---: | ---: | ---: | :---: | ---: |",
    ]
    stores = {
        mode: RedisStore(server.client(), namespace=f"latency-{mode}", probe_every=0.02)
        for mode in ("sync", "async")
    }
    assert stores["sync"].deadline == DEADLINE
    limits = {
        mode: gr.ActionLimit(f"latency-{mode}", max_actions=CAP, per="1h", store=store)
        for mode, store in stores.items()
    }
    scenarios = [
        (None, "healthy"),
        ("stop", "SIGSTOP 50 ms of every 200 ms"),
        ("sleep", "DEBUG SLEEP 50 ms every 200 ms"),
        ("kill", "SIGKILL and restart every 0.4 s"),
    ]
    for kind, title in scenarios:
        for mode in ("sync", "async"):
            limit, key, admitted = limits[mode], f"{kind}-{mode}", [0]
            timer = timed_sync if mode == "sync" else timed_async
            samples = under(server, kind, lambda: timer(limit, key, admitted))  # noqa: B023
            if kind == "kill":
                exact = "n/a (counts lost)"
            else:
                if mode == "sync":  # the async run settled before its loop ended
                    settle_sync(limit, key, admitted[0])
                exact = str(counted(limit, key) - admitted[0])
            lines.append(row(f"{mode}, {title}", samples, exact))
    lines += ["", f"Load average after: {load()}."]
    return lines


PING = [b"*1\r\n$4\r\nPING\r\n"]


def cost(server: Server) -> str:
    """Part 1: a healthy decision over a raw PING (the decision's own path), round-robin."""
    # A roomy deadline: these rows time round trips, not the failure policy.
    store = RedisStore(server.client(), namespace="cost", deadline=0.5)
    limit = gr.ActionLimit("cost", max_actions=CAP, per="1h", store=store)
    keyed = gr.ActionLimit("cost-keyed", max_actions=CAP, per="1h", store=store)
    pool = store.sync_client().connection_pool

    def raw_ping() -> object:
        # PING through the pooled-connection path a decision takes.
        connection = pool.get_connection()
        try:
            connection.send_packed_command(PING, check_health=False)
            return connection.read_response()
        finally:
            pool.release(connection)

    suite = Suite("Sync: a healthy decision over a raw PING (round-robin)")
    suite.ladder(
        {
            "PING (raw, the decision's path)": raw_ping,
            "PING (redis-py)": server.client().ping,
            "allow(), one budget": limit.allow,
            "allow(key)": lambda: keyed.allow("user-42"),
        },
        baseline="PING (raw, the decision's path)",
        number=200,
    )
    loop = asyncio.new_event_loop()
    run = loop.run_until_complete

    async def raw_ping_async() -> object:
        return await store.pipeline().submit(PING)  # type: ignore[misc]

    def in_loop(make: Callable[[], Awaitable[Any]]) -> Callable[[], object]:
        return lambda: run(make())

    asuite = Suite("Async: a healthy decision over a raw async PING (round-robin)")
    asuite.ladder(
        {
            "PING (raw async, the decision's path)": in_loop(raw_ping_async),
            "allow_async(), one budget": in_loop(limit.allow_async),
            "allow_async(key)": in_loop(lambda: keyed.allow_async("user-42")),
        },
        baseline="PING (raw async, the decision's path)",
        number=200,
    )
    run(store.aclose())
    loop.close()
    lines = [suite.table(), "", asuite.table(), ""]
    for table in (suite, asuite):
        base = table.results[0]
        for result in table.results[2 if table is suite else 1 :]:
            extra = (result.seconds - base.seconds) * 1e6
            lines.append(f"- {result.name}: {extra:+.1f} µs over {base.name} (medians)")
    return "\n".join(lines)


async def longest_stall(predict: Callable[..., Awaitable[Any]], calls: int) -> float:
    worst, running = 0.0, True

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0)
            now = time.perf_counter()
            worst, last = max(worst, now - last), now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    decisions = await asyncio.gather(*(predict({"user": str(i % 100)}) for i in range(calls)))
    running = False
    await tick
    assert all(d.act and not d.degraded for d in decisions), "a decision was not made by Redis"
    return worst


def guarded(store: RedisStore | None) -> Callable[..., Awaitable[Any]]:
    settings: dict[str, Any] = {} if store is None else {"store": store}
    limit = gr.ActionLimit(
        "stall", max_actions=CAP, per="1h", key=lambda row: row["user"], **settings
    )

    async def predict(row: dict[str, str]) -> float:
        return 0.9

    return gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[limit])(
        predict
    )


def stall(server: Server) -> list[str]:
    """Part 3: the loop's longest stall, median of 5 runs."""
    store = RedisStore(server.client(), namespace="stall", deadline=5.0)
    memory, shared = guarded(None), guarded(store)

    async def runs() -> tuple[list[float], list[float], list[float]]:
        m, r, s = [], [], []
        for _ in range(5):
            m.append(await longest_stall(memory, 1000))
            r.append(await longest_stall(shared, 1000))
            server.process.send_signal(signal.SIGSTOP)
            resume = threading.Timer(1.0, server.process.send_signal, (signal.SIGCONT,))
            resume.start()
            try:
                s.append(await longest_stall(shared, 1000))
            finally:
                resume.join()
        await store.aclose()
        return m, r, s

    m, r, s = asyncio.run(runs())
    base = statistics.median(m)

    def line(name: str, runs: list[float]) -> str:
        median = statistics.median(runs)
        spread = ", ".join(f"{x * 1e3:.0f}" for x in runs)
        return f"| {name} | {median * 1e3:.1f} ms | {median / base:.1f}x | {spread} |"

    return [
        "| 1,000 concurrent async guarded calls, keyed limit | longest loop stall "
        "(median of 5) | ratio to memory | runs (ms) |",
        "| --- | ---: | ---: | --- |",
        line("memory store", m),
        line("Redis store (redis.asyncio)", r),
        line("Redis stopped (SIGSTOP) for 1 s mid-run", s),
        "",
        f"A blocking client would stall the loop for the whole stop (1 s). Load average: {load()}.",
    ]


def first_burst(server: Server) -> list[str]:
    """Part 4: bursts of concurrent decisions on a new loop, then on the same loop again."""
    store = RedisStore(server.client(), namespace="first", deadline=DEADLINE)
    limit = gr.ActionLimit("first", max_actions=CAP, per="1h", store=store)

    async def bursts(size: int) -> tuple[int, int]:
        async def burst() -> int:
            # Far from the cap: a denial is a decision left to the policy.
            return sum(
                not a for a in await asyncio.gather(*(limit.allow_async() for _ in range(size)))
            )

        first = await burst()  # the loop's connection is not open yet
        await asyncio.sleep(0.2)  # past a trip's probe_every
        again = await burst()
        await store.aclose()
        return first, again

    lines = [
        "| concurrent decisions (deadline 5 ms), 10 new loops | degraded, first burst "
        "(median, worst) | degraded, second burst on the loop (median, worst) |",
        "| --- | ---: | ---: |",
    ]
    for size in (10, 100, 1000):
        runs = []
        for _ in range(10):
            runs.append(asyncio.run(bursts(size)))
            time.sleep(0.2)
        first = [f for f, _ in runs]
        again = [a for _, a in runs]
        lines.append(
            f"| {size:,} | {statistics.median(first):.0f}, {max(first)} | "
            f"{statistics.median(again):.0f}, {max(again)} |"
        )
    return [*lines, "", f"Load average: {load()}."]


def main() -> None:
    gr.configure(hooks=[])
    executable = shutil.which("redis-server")
    if executable is None:
        print("redis-server not found")
        return
    server = Server(executable)
    started = time.monotonic()
    try:
        print(f"{machine()}; load average at start {load()}.")
        print()
        print(cost(server))
        print()
        print("\n".join(stall(server)))
        print()
        print("\n".join(first_burst(server)))
        print()
        print("\n".join(latency(server)))
    finally:
        server.stop()
    print()
    print(f"Ran in {time.monotonic() - started:.0f} s.")


if __name__ == "__main__":
    main()
