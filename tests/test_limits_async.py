"""Action limits in guards on ``async def`` functions: awaited, and deciding as sync guards do."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pytest

import guardrail as gr
from guardrail.instrumentation import LimitDegraded
from guardrail.mechanisms import AsyncLimiter, Call, Limiter, Source
from guardrail.testing import capture_events

MODEL = gr.ModelRef(name="fraud", version="3.1.0")
THRESHOLD = gr.Threshold(0.5, scale=gr.Probability, model=MODEL)

Row = dict[str, Any]

# One scenario: single rows and batches, keyed and weighted, a second limit
# that vetoes (so the first one refunds), a kill switch on and off again.
SCENARIO: list[Row | list[Row] | str] = [
    {"merchant": "m1", "card": "c1", "weight": 1, "score": 0.9},
    {"merchant": "m1", "card": "c1", "weight": 2, "score": 0.9},
    {"merchant": "m1", "card": "c2", "weight": 1, "score": 0.2},
    [
        {"merchant": "m2", "card": "c3", "weight": 1, "score": 0.9},
        {"merchant": "m2", "card": "c3", "weight": 1, "score": 0.8},
        {"merchant": "m2", "card": "c3", "weight": 1, "score": 0.7},
        {"merchant": "m1", "card": "c4", "weight": 1, "score": 0.9},
        {"merchant": "m3", "card": "c4", "weight": 3, "score": 0.6},
        {"merchant": "m3", "card": "c5", "weight": 1, "score": 0.1},
    ],
    "pause",
    {"merchant": "m4", "card": "c6", "weight": 1, "score": 0.9},
    "resume",
    {"merchant": "m4", "card": "c6", "weight": 1, "score": 0.9},
    [
        {"merchant": "m4", "card": "c6", "weight": 2, "score": 0.9},
        {"merchant": "m4", "card": "c7", "weight": 1, "score": 0.9},
        {"merchant": "m5", "card": "c7", "weight": 1, "score": 0.9},
    ],
    {"merchant": "m5", "card": "c8", "weight": "bad", "score": 0.9},
]
MERCHANTS = ["m1", "m2", "m3", "m4", "m5"]
CARDS = ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"]


def weight_of(row: Row) -> int:
    return int(row["weight"])


def merchant(row: Row) -> str:
    return str(row["merchant"])


def card(row: Row) -> str:
    return str(row["card"])


def limits(store: Callable[[], Any] | None, **extra: Any) -> tuple[gr.ActionLimit, ...]:
    stores = {} if store is None else {"store": store()}
    per_merchant = gr.ActionLimit(
        "per-merchant", max_actions=4, per="1h", key=merchant, weight=weight_of, **stores, **extra
    )
    stores = {} if store is None else {"store": store()}
    per_card = gr.ActionLimit("per-card", max_actions=2, per="1h", key=card, **stores, **extra)
    return per_merchant, per_card


def outcome(decision: gr.Decision[Any]) -> tuple[Any, ...]:
    act = decision.act
    return (
        act.tolist() if isinstance(act, np.ndarray) else act,
        decision.reasons,
        decision.degraded,
    )


def scores(rows: Row | list[Row]) -> float | np.ndarray:  # type: ignore[type-arg]
    if isinstance(rows, list):
        return np.array([r["score"] for r in rows])
    return float(rows["score"])


def run_sync(limiters: tuple[gr.ActionLimit, ...]) -> list[Any]:
    @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=list(limiters))
    def predict(rows: Row | list[Row]) -> float | np.ndarray:  # type: ignore[type-arg]
        return scores(rows)

    seen: list[Any] = []
    for step in SCENARIO:
        if step == "pause":
            limiters[0].pause()
        elif step == "resume":
            limiters[0].resume()
        else:
            try:
                seen.append(outcome(predict(step)))  # type: ignore[arg-type]
            except gr.errors.ActionLimitExceededError as e:
                seen.append(("raised", e.limit, e.paused))
    return seen


def run_async(limiters: tuple[gr.ActionLimit, ...]) -> list[Any]:
    @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=list(limiters))
    async def predict(rows: Row | list[Row]) -> float | np.ndarray:  # type: ignore[type-arg]
        await asyncio.sleep(0)
        return scores(rows)

    async def main() -> list[Any]:
        seen: list[Any] = []
        for step in SCENARIO:
            if step == "pause":
                limiters[0].pause()
            elif step == "resume":
                limiters[0].resume()
            else:
                try:
                    seen.append(outcome(await predict(step)))  # type: ignore[arg-type]
                except gr.errors.ActionLimitExceededError as e:
                    seen.append(("raised", e.limit, e.paused))
        for limit in limiters:
            if isinstance(limit.store, gr.RedisStore):
                await limit.store.aclose()
        return seen

    return asyncio.run(main())


def remaining(limiters: tuple[gr.ActionLimit, ...]) -> list[int]:
    per_merchant, per_card = limiters
    return [per_merchant.remaining(m) for m in MERCHANTS] + [per_card.remaining(c) for c in CARDS]


def event_summary(events: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (e.kind, e.source.name, getattr(e, "key", None), getattr(e, "degraded", None))
        for e in events
        if e.kind.startswith("limit.")
    ]


def compare(store: Callable[[], Any] | None, telemetry: bool, **extra: Any) -> None:
    """Run the scenario through a sync and an async guard; they must agree on everything."""
    runs = []
    for run in (run_sync, run_async):
        limiters = limits(store, **extra)
        if telemetry:
            with capture_events() as events:
                seen = run(limiters)
            runs.append((seen, remaining(limiters), event_summary(events)))
        else:
            runs.append((seen := run(limiters), remaining(limiters), []))
    assert runs[0] == runs[1]
    # The scenario means something: actions were counted, and denied unless report-only.
    seen = runs[0][0]
    assert runs[0][1] != [4] * len(MERCHANTS) + [2] * len(CARDS)
    if extra.get("on_exceed") != "report":
        assert any(s[0] == "raised" or "limit:per-card" in s[1] for s in seen)


class TestTheAsyncRole:
    def test_an_action_limit_is_an_async_limiter(self) -> None:
        """ActionLimit plays both sides of the limiter role."""
        limit = gr.ActionLimit("sms", max_actions=1, per="1m")
        assert isinstance(limit, AsyncLimiter)
        assert isinstance(limit, Limiter)

    def test_an_async_guard_awaits_an_async_limiter(self) -> None:
        """An async guard calls the async methods; a sync guard the sync ones."""

        class Recording:
            kind: ClassVar[str] = "recording"

            def __init__(self) -> None:
                self.name = "recording"
                self.source = Source(self.kind, self.name)
                self.calls: list[str] = []

            def acquire_call(self, call: Call) -> object:
                self.calls.append("acquire")
                return "receipt"

            def refund_call(self, receipt: object, act: object) -> None:
                self.calls.append("refund")

            async def acquire_call_async(self, call: Call) -> object:
                self.calls.append("acquire_async")
                return "receipt"

            async def refund_call_async(self, receipt: object, act: object) -> None:
                self.calls.append("refund_async")

        def guarded(fn: Any) -> tuple[Recording, Any]:
            limiter, later = Recording(), gr.ActionLimit("later", max_actions=1, per="1h")
            later.pause()
            return limiter, gr.guard(
                model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[limiter, later]
            )(fn)

        async def score_async(row: Row) -> float:
            return 0.9

        def score(row: Row) -> float:
            return 0.9

        limiter, predict_async = guarded(score_async)
        assert isinstance(limiter, AsyncLimiter)
        decision = asyncio.run(predict_async({"a": 1}))
        assert (decision.act, decision.reasons) == (False, ("limit:later",))
        # Vetoed by a later limit: its receipt comes back to the async refund.
        assert limiter.calls == ["acquire_async", "refund_async"]
        limiter, predict = guarded(score)
        assert predict({"a": 1}).act is False
        assert limiter.calls == ["acquire", "refund"]

    def test_a_sync_only_limiter_still_works_in_an_async_guard(self) -> None:
        """A limiter with only the sync methods is called as before."""

        class Closed:
            kind: ClassVar[str] = "closed"

            def __init__(self) -> None:
                self.name = "closed"
                self.source = Source(self.kind, self.name)

            def acquire_call(self, call: Call) -> None:
                call.veto("closed")

            def refund_call(self, receipt: object, act: object) -> None:
                pass

        assert not isinstance(Closed(), AsyncLimiter)

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[Closed()])
        async def predict(row: Row) -> float:
            return 0.9

        decision = asyncio.run(predict({"a": 1}))
        assert (decision.act, decision.reasons) == (False, ("closed",))

    def test_a_cancelled_call_gives_back_what_earlier_limits_counted(self) -> None:
        """A call cancelled while a later limiter waits takes no action: the counts come back."""
        first = gr.ActionLimit("first", max_actions=1, per="1h")
        started = asyncio.Event()

        class Slow:
            kind: ClassVar[str] = "slow"

            def __init__(self) -> None:
                self.name = "slow"
                self.source = Source(self.kind, self.name)

            def acquire_call(self, call: Call) -> None:
                return None

            def refund_call(self, receipt: object, act: object) -> None:
                pass

            async def acquire_call_async(self, call: Call) -> None:
                started.set()
                await asyncio.sleep(3600)

            async def refund_call_async(self, receipt: object, act: object) -> None:
                pass

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[first, Slow()])
        async def predict(row: Row) -> float:
            return 0.9

        async def main() -> None:
            task = asyncio.create_task(predict({"a": 1}))
            await started.wait()
            assert first.remaining() == 0  # counted, then the call waits on the next limiter
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert first.remaining() == 1


class TestSameAsSync:
    @pytest.mark.parametrize("telemetry", [False, True], ids=["quiet", "events"])
    @pytest.mark.parametrize("on_exceed", ["fallback", "raise", "report"])
    def test_memory_store(self, telemetry: bool, on_exceed: str) -> None:
        """Sync and async guards over memory stores decide, count and report alike."""
        compare(None, telemetry, on_exceed=on_exceed)

    @pytest.mark.integration
    @pytest.mark.parametrize("telemetry", [False, True], ids=["quiet", "events"])
    @pytest.mark.parametrize("on_exceed", ["fallback", "raise", "report"])
    def test_redis_store(
        self, redis_server: Any, namespace: str, telemetry: bool, on_exceed: str
    ) -> None:
        """Sync and async guards over Redis decide, count and report alike."""
        made = iter(range(100))

        def store() -> gr.RedisStore:
            # Each run and limit in its own namespace: the two runs must not share counts.
            return gr.RedisStore(
                redis_server.client(), namespace=f"{namespace}-{next(made)}", deadline=0.5
            )

        compare(store, telemetry, on_exceed=on_exceed)


async def longest_stall(predict: Any, calls: int) -> tuple[float, list[Any]]:
    """Run *calls* guarded calls at once; the longest the event loop went without a turn."""
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
    return worst, decisions


@pytest.mark.integration
class TestLoopStall:
    def test_waiting_on_redis_does_not_block_the_event_loop(
        self, redis_server: Any, namespace: str
    ) -> None:
        """1,000 concurrent guarded calls wait on a stopped Redis without stalling the loop.

        The server is stopped (SIGSTOP) for 2 s while the calls are in flight:
        a decision on a blocking client would hold the loop for those 2 s.
        Through redis.asyncio the longest stall stays near the memory store's
        (the loop's own work for 1,000 calls): at most twice it plus a wide
        margin for a loaded machine (0.75 s), and under half the stop; medians
        of three runs.
        """
        import redis

        def guarded(store: Any) -> Any:
            limit = gr.ActionLimit(
                "stall", max_actions=10**6, per="1h", key=lambda row: row["user"], **store
            )
            decorate = gr.guard(
                model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[limit]
            )

            async def predict(row: Row) -> float:
                return 0.9

            return decorate(predict)

        shared = gr.RedisStore(
            redis.Redis(host="127.0.0.1", port=redis_server.port),
            namespace=namespace,
            deadline=10.0,
        )
        in_memory, through_redis = guarded({}), guarded({"store": shared})
        process = redis_server.process
        assert process is not None
        stop = 2.0

        async def main() -> tuple[list[float], list[float]]:
            memory, stopped = [], []
            for _ in range(3):
                gc.collect()  # a collection is a stall too, but not the one measured here
                stall, decisions = await longest_stall(in_memory, 1000)
                memory.append(stall)
                gc.collect()
                process.send_signal(signal.SIGSTOP)
                resume = threading.Timer(stop, process.send_signal, (signal.SIGCONT,))
                resume.start()
                try:
                    stall, decisions = await longest_stall(through_redis, 1000)
                finally:
                    resume.join()
                stopped.append(stall)
                # Every call waited for Redis's answer: none was left to the failure policy.
                assert all(d.act and not d.degraded for d in decisions)
            await shared.aclose()
            return memory, stopped

        memory, stopped = asyncio.run(main())
        assert statistics.median(stopped) <= 2 * statistics.median(memory) + 0.75
        assert statistics.median(stopped) < stop / 2


def clients_named(client: Any, name: str) -> int:
    """How many connections the server has whose client name is *name*."""
    return sum(1 for c in client.client_list() if c.get("name") == name)


@pytest.mark.integration
class TestOnePipelinePerLoop:
    def test_a_burst_of_decisions_shares_one_connection(
        self, redis_server: Any, namespace: str
    ) -> None:
        """1,000 concurrent async decisions on a loop take one connection, and all are made."""
        import redis

        name = f"pipe-{namespace}"
        store = gr.RedisStore(
            redis.Redis(host="127.0.0.1", port=redis_server.port, client_name=name),
            namespace=namespace,
            deadline=10.0,
        )
        limit = gr.ActionLimit("burst", max_actions=600, per="1h", store=store)
        admin = redis_server.client()

        async def main() -> tuple[list[bool], int]:
            decisions = await asyncio.gather(*(limit.allow_async() for _ in range(1000)))
            connections = clients_named(admin, name)
            await store.aclose()
            return decisions, connections

        before = clients_named(admin, name)  # the sync connection opened at bind
        decisions, connections = asyncio.run(main())
        assert sum(decisions) == 600
        assert connections - before == 1
        # aclose closed it (the server notices within a moment, even under load).
        end = time.monotonic() + 10
        while clients_named(admin, name) != before and time.monotonic() < end:
            time.sleep(0.01)
        assert clients_named(admin, name) == before

    def test_replies_are_handed_back_a_few_dozen_per_turn(
        self, redis_server: Any, namespace: str
    ) -> None:
        """While 1,000 replies come back, the loop turns at least once per 32 of them."""
        import redis

        from guardrail._redis_pipeline import REPLIES_PER_TURN

        store = gr.RedisStore(
            redis.Redis(host="127.0.0.1", port=redis_server.port),
            namespace=namespace,
            deadline=10.0,
        )
        limit = gr.ActionLimit("turns", max_actions=10**6, per="1h", store=store)

        async def main() -> tuple[int, int]:
            await limit.allow_async()  # connected
            turns, done = 0, False

            async def ticker() -> None:
                nonlocal turns
                while not done:
                    await asyncio.sleep(0)
                    turns += 1

            tick = asyncio.create_task(ticker())
            await asyncio.sleep(0)
            start = turns
            await asyncio.gather(*(limit.allow_async() for _ in range(1000)))
            done = True
            await tick
            await store.aclose()
            return start, turns

        start, turns = asyncio.run(main())
        assert turns - start >= 1000 // REPLIES_PER_TURN

    def test_each_loop_has_its_own_pipeline_and_reconnects_after_a_restart(
        self, own_redis_server: Any, namespace: str
    ) -> None:
        """A killed server fails what was in flight; the next decision connects anew."""
        import redis

        store = gr.RedisStore(
            redis.Redis(host="127.0.0.1", port=own_redis_server.port),
            namespace=namespace,
            deadline=2.0,
            on_state_lost="reset",
            probe_every=0.01,
        )
        limit = gr.ActionLimit("restart", max_actions=10, per="1h", store=store)

        async def main() -> list[bool]:
            first = await limit.allow_async()
            own_redis_server.stop()  # as a crash would
            own_redis_server.start()
            answers = [first]
            end = time.monotonic() + 20
            while time.monotonic() < end:
                with capture_events() as events:
                    answer = await limit.allow_async()
                if answer and not any(isinstance(e, LimitDegraded) for e in events):
                    answers.append(answer)
                    break
                await asyncio.sleep(0.05)
            await store.aclose()
            return answers

        assert asyncio.run(main()) == [True, True]


@pytest.mark.integration
class TestOneDeadline:
    def test_a_first_decision_on_a_stopped_server_waits_one_deadline_and_counts_nothing(
        self, own_redis_server: Any, namespace: str
    ) -> None:
        """Connection set-up counts against the decision's one deadline.

        The server is stopped (SIGSTOP) before the loop's first decision: the
        connection cannot be set up (the handshake gets no answer). Each of
        20 decisions is decided by the policy after one deadline (1 s; a
        connection wait and then a reply wait would take two), well under
        1.6 s on a loaded machine. Their deadlines pass before they can be
        written, so once the server runs again none of them was counted.
        """
        import redis

        store = gr.RedisStore(
            redis.Redis(host="127.0.0.1", port=own_redis_server.port),
            namespace=namespace,
            deadline=1.0,
        )
        limit = gr.ActionLimit("first", max_actions=100, per="1h", store=store)
        process = own_redis_server.process
        assert process is not None

        async def main() -> tuple[list[bool], float]:
            process.send_signal(signal.SIGSTOP)
            try:
                start = time.monotonic()
                allowed = await asyncio.gather(*(limit.allow_async() for _ in range(20)))
                waited = time.monotonic() - start
            finally:
                process.send_signal(signal.SIGCONT)
            await store.aclose()
            return allowed, waited

        allowed, waited = asyncio.run(main())
        assert allowed == [False] * 20  # "closed": denied
        assert 0.9 <= waited < 1.6
        check = gr.ActionLimit(
            "first",
            max_actions=100,
            per="1h",
            store=gr.RedisStore(own_redis_server.client(), namespace=namespace, deadline=2.0),
        )
        assert check.remaining() == 100


class SlowLink:
    """A TCP proxy to a real server that delays every reply by *delay* seconds (a slow network).

    Requests go through at once; each chunk of a reply is delivered *delay*
    after it left the server, so replies keep their order and spacing, like
    a long link.
    """

    def __init__(self, port: int, delay: float) -> None:
        import socket

        self.upstream, self.delay = port, delay
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.sockets: list[Any] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import queue
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self.sockets += [client, server]
            due: queue.Queue[tuple[float, bytes]] = queue.Queue()
            for target, args in (
                (self._forward, (client, server)),
                (self._delayed_read, (server, due)),
                (self._delayed_write, (client, due)),
            ):
                threading.Thread(target=target, args=args, daemon=True).start()

    @staticmethod
    def _forward(source: Any, sink: Any) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)

    def _delayed_read(self, source: Any, due: Any) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                due.put((time.monotonic() + self.delay, data))
        due.put((0.0, b""))

    @staticmethod
    def _delayed_write(sink: Any, due: Any) -> None:
        with contextlib.suppress(OSError):
            while True:
                when, data = due.get()
                if not data:
                    return
                time.sleep(max(0.0, when - time.monotonic()))
                sink.sendall(data)

    def close(self) -> None:
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.close()


@pytest.mark.integration
class TestOneDeadlineWithConnecting:
    @pytest.mark.parametrize("kind", ["sync", "async"])
    def test_connecting_and_the_reply_share_one_deadline(
        self, redis_server: Any, namespace: str, kind: str
    ) -> None:
        """A decision that has to connect gets only what is left of its deadline for the reply.

        Every reply takes 1 s through the link and the deadline is 1.5 s.
        An async decision connects in the background and waits one deadline
        from when it asked: the policy decides (denied, degraded) at 1.5 s,
        where a deadline for the connection and another for the reply would
        have waited until the reply came (about 3 s) and admitted. A sync
        decision connects itself: redis-py's handshake takes two round trips
        (2 s, each within the deadline), after which no time is left, so it
        is denied without sending (the reply would have come at 3 s).
        """
        import redis

        link = SlowLink(redis_server.port, delay=1.0)
        try:
            store = gr.RedisStore(
                redis.Redis(host="127.0.0.1", port=link.port),
                namespace=namespace,
                deadline=1.5,
            )
            limit = gr.ActionLimit("slow", max_actions=10, per="1h", store=store)
            store.close()  # the connection opened at bind is gone: the decision connects

            async def decide_async() -> tuple[bool, float]:
                start = time.monotonic()
                with capture_events() as events:
                    allowed = await limit.allow_async()
                waited = time.monotonic() - start
                await store.aclose()
                return allowed and not events, waited

            def decide() -> tuple[bool, float]:
                start = time.monotonic()
                with capture_events() as events:
                    allowed = limit.allow()
                return allowed and not events, time.monotonic() - start

            admitted, waited = decide() if kind == "sync" else asyncio.run(decide_async())
            counter: Any = limit._counter
            store.close()  # with any connection kept for a late reply
            assert counter.late == []
        finally:
            link.close()
        assert not admitted
        if kind == "async":
            assert 1.4 <= waited < 2.2
        else:
            assert 1.9 <= waited < 2.7
