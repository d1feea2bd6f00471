"""Action limits through Redis under faults: decision latency percentiles and async loop stall.

Starts its own ``redis-server`` on a free loopback port. Prints markdown:

- p50/p99/max of one decision (deadline 5 ms): healthy, while the server is
  stopped (SIGSTOP) 50 ms out of every 200 ms, and while it is killed and
  restarted;
- the longest event-loop stall while 1,000 concurrent ``allow_async`` calls
  run, with the memory store and with Redis.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable

import redis
import redis.asyncio

import guardrail as gr
from guardrail.limits import RedisStore

DEADLINE = 0.005


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(executable: str, port: int, workdir: str) -> subprocess.Popen[bytes]:
    flags = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen([executable, *flags, "--dir", workdir], stdout=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(500):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    return server


def percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    p50 = samples[len(samples) // 2]
    p99 = samples[int(len(samples) * 0.99)]
    return f"{p50 * 1e3:.2f} ms | {p99 * 1e3:.2f} ms | {samples[-1] * 1e3:.2f} ms"


def timed(decide: Callable[[], object], seconds: float) -> list[float]:
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        decide()
        out.append(time.perf_counter() - t)
        time.sleep(0.0005)
    return out


def main() -> None:
    gr.configure(hooks=[])
    executable = shutil.which("redis-server")
    if executable is None:
        print("redis-server not found")
        return
    port, workdir = free_port(), tempfile.mkdtemp(prefix="bench-faults-")
    state = {"server": start(executable, port, workdir)}
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        store = RedisStore(client, namespace="bench", deadline=DEADLINE, probe_every=0.02)
        limit = gr.ActionLimit("bench", max_actions=10**9, per="1h", store=store)
        rows = ["| scenario | p50 | p99 | max |", "| --- | ---: | ---: | ---: |"]
        raw = redis.Redis(host="127.0.0.1", port=port)
        rows.append(f"| PING (redis-py), healthy | {percentiles(timed(raw.ping, 2))} |")
        rows.append(f"| decision, healthy | {percentiles(timed(limit.allow, 2))} |")

        stop = threading.Event()

        def flap() -> None:
            while not stop.is_set():
                state["server"].send_signal(signal.SIGSTOP)
                time.sleep(0.05)
                state["server"].send_signal(signal.SIGCONT)
                time.sleep(0.15)

        flapper = threading.Thread(target=flap)
        flapper.start()
        try:
            samples = timed(limit.allow, 3)
        finally:
            stop.set()
            flapper.join()
            state["server"].send_signal(signal.SIGCONT)
        rows.append(f"| decision, SIGSTOP 50 ms of every 200 ms | {percentiles(samples)} |")

        stop.clear()

        def crash() -> None:
            while not stop.is_set():
                state["server"].kill()
                state["server"].wait()
                time.sleep(0.1)
                state["server"] = start(executable, port, workdir)
                time.sleep(0.3)

        crasher = threading.Thread(target=crash)
        crasher.start()
        try:
            samples = timed(limit.allow, 3)
        finally:
            stop.set()
            crasher.join()
        rows.append(f"| decision, SIGKILL and restart every 0.4 s | {percentiles(samples)} |")
        print("\n".join(rows))
        print()

        async def stall(limiter: gr.ActionLimit) -> float:
            worst = 0.0
            running = True

            async def ticker() -> None:
                nonlocal worst
                last = time.perf_counter()
                while running:
                    await asyncio.sleep(0)
                    now = time.perf_counter()
                    worst = max(worst, now - last)
                    last = now

            tick = asyncio.create_task(ticker())
            await asyncio.sleep(0)
            await asyncio.gather(*(limiter.allow_async(str(i)) for i in range(1000)))
            running = False
            await tick
            return worst

        memory = gr.ActionLimit("mem", max_actions=10**9, per="1h")
        async_store = RedisStore(
            redis.asyncio.Redis(host="127.0.0.1", port=port), namespace="bench-async", deadline=1.0
        )
        shared = gr.ActionLimit("shared", max_actions=10**9, per="1h", store=async_store)

        async def both() -> tuple[float, float]:
            m = min([await stall(memory) for _ in range(5)])
            r = min([await stall(shared) for _ in range(5)])
            await async_store.aclose()
            return m, r

        m, r = asyncio.run(both())
        print("| 1,000 concurrent `allow_async` | longest loop stall (best of 5) |")
        print("| --- | ---: |")
        print(f"| memory store | {m * 1e3:.1f} ms |")
        print(f"| Redis store (redis.asyncio) | {r * 1e3:.1f} ms ({r / m:.1f}x memory) |")
    finally:
        state["server"].kill()
        state["server"].wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
