"""Known weaknesses found by attacking the async limits and the threshold and outcome changes.

Each test states the behaviour an operator would expect and is marked as an
expected failure until the behaviour holds.
"""

from __future__ import annotations

import asyncio
import math
import random
import signal
import threading
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import guardrail as gr

MODEL = gr.ModelRef(name="fraud", version="3.1.0")
THRESHOLD = gr.Threshold(0.5, scale=gr.Probability, model=MODEL)


@pytest.mark.integration
class TestAsyncBursts:
    def test_a_burst_of_concurrent_async_calls_is_admitted(
        self, redis_server: Any, namespace: str
    ) -> None:
        """Bursts of 100 concurrent async calls on a healthy Redis are admitted.

        The deadline is generous (0.25 s) so that a loaded machine keeps it;
        the figures at the default 5 ms deadline are in
        ``benchmarks/bench_limits_faults.py``.
        """
        import redis

        store = gr.RedisStore(
            redis.Redis(host="127.0.0.1", port=redis_server.port),
            namespace=namespace,
            deadline=0.25,
        )
        limit = gr.ActionLimit(
            "burst", max_actions=10**6, per="1h", key=lambda row: row["user"], store=store
        )

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[limit])
        async def predict(row: dict[str, str]) -> float:
            return 0.9

        async def main() -> list[int]:
            for i in range(5):  # warm-up: connections open, imports done
                await predict({"user": f"w{i}"})
            admitted = []
            for burst in range(3):
                decisions = await asyncio.gather(
                    *[predict({"user": f"u{burst}-{i}"}) for i in range(100)]
                )
                admitted.append(sum(bool(d.act) for d in decisions))
            await store.aclose()
            return admitted

        assert max(asyncio.run(main())) == 100


@pytest.mark.integration
class TestAsyncRecovery:
    def test_ending_an_outage_does_not_stall_the_event_loop(
        self, own_redis_server: Any, namespace: str
    ) -> None:
        """The async decision that ends an outage under "local" never holds the loop long.

        During a stop (SIGSTOP) 8,000 keys are admitted locally; the first
        answer afterwards writes them back to Redis. A heartbeat task on the
        same loop should never wait long meanwhile.
        """
        import redis

        store = gr.RedisStore(
            redis.Redis(host="127.0.0.1", port=own_redis_server.port),
            namespace=namespace,
            on_store_error="local",
            local_share=0.5,
            probe_every=0.05,
        )
        limit = gr.ActionLimit("outage", max_actions=10, per="1h", store=store)
        process = own_redis_server.process
        assert process is not None

        async def main() -> tuple[int, float, bool]:
            assert await limit.allow_async("warm")
            process.send_signal(signal.SIGSTOP)
            try:
                admitted = sum([await limit.allow_async(f"k{i}") for i in range(8000)])
            finally:
                process.send_signal(signal.SIGCONT)
            await asyncio.sleep(0.3)  # past the probe: the next decision asks Redis
            gaps: list[float] = []
            beating = True

            async def beat() -> None:
                last = time.perf_counter()
                while beating:
                    await asyncio.sleep(0.001)
                    now = time.perf_counter()
                    gaps.append(now - last)
                    last = now

            heart = asyncio.create_task(beat())
            await asyncio.sleep(0.05)
            allowed = await limit.allow_async("after")
            await asyncio.sleep(0.05)
            beating = False
            await heart
            await store.aclose()
            return admitted, max(gaps), allowed

        admitted, stall, allowed = asyncio.run(main())
        assert admitted == 8000  # admitted locally
        assert allowed  # then by Redis again
        # Written back in line, one round trip per key, 8,000 keys held the loop
        # about 0.5 s; in the background the longest gap is a few ms (the bound
        # leaves room for a loaded machine).
        assert stall < 0.25, f"the loop stalled {stall:.3f} s"


@pytest.mark.integration
class TestLateRepliesAtTheLoopsEnd:
    def test_aclose_gives_back_what_a_timed_out_decision_counted(
        self, redis_server: Any, namespace: str
    ) -> None:
        """A decision that timed out just before ``await store.aclose()`` is still given back.

        The server is busy (DEBUG SLEEP 1.0) when the decision is sent: it
        times out and is denied, and the server counts it when it wakes up.
        Closing the store as documented before the loop ends should not lose
        that refund.
        """
        import redis

        store = gr.RedisStore(
            redis.Redis(host="127.0.0.1", port=redis_server.port),
            namespace=namespace,
            deadline=0.05,
        )
        limit = gr.ActionLimit("late", max_actions=10, per="1h", store=store)
        busy_client = redis_server.client()

        async def main() -> bool:
            assert await limit.allow_async("warm")
            await asyncio.sleep(0.5)  # the pool's background warm-up: connections ready
            busy = threading.Thread(
                target=busy_client.execute_command, args=("DEBUG", "SLEEP", "1.0")
            )
            busy.start()
            try:
                await asyncio.sleep(0.3)  # the server is inside DEBUG SLEEP, even under load
                allowed = await limit.allow_async("k")
            finally:
                await store.aclose()
                busy.join()
            return allowed

        assert asyncio.run(main()) is False  # timed out: denied by the default policy
        time.sleep(0.2)
        reader = gr.RedisStore(busy_client, namespace=namespace, deadline=2.0)
        check = gr.ActionLimit("late", max_actions=10, per="1h", store=reader)
        assert check.remaining("k") == 10  # the denied decision holds no budget


class TestDynamicThresholdRestore:
    def test_a_restored_threshold_decides_with_the_same_value(self) -> None:
        """A threshold restored from its snapshot compares scores with the very same value.

        Decisions compare with the tracker, so a restarted process that
        "resumes where it stopped" must hold the same tracker, bit for bit:
        otherwise a score at the threshold is decided one way before the
        restart and the other way after it.
        """
        threshold = gr.DynamicThreshold(target_rate=0.1, initial=gr.Probability(0.5), model=MODEL)
        rng = np.random.default_rng(0)
        for score in rng.uniform(0.0, 1.0, 50).tolist():
            threshold.decide(gr.Prediction(gr.Probability(score), MODEL))
        restored = gr.DynamicThreshold.restore(threshold.snapshot_json())
        at = float(threshold.tracker.value)
        assert float(restored.tracker.value) == at
        tie = gr.Prediction(gr.Probability(at), MODEL)
        before, after = threshold.decide(tie), restored.decide(tie)
        assert (after.above, after.threshold.value) == (before.above, before.threshold.value)

    @given(
        scale=st.sampled_from(["probability", "log-odds"]),
        seed=st.integers(0, 2**32 - 1),
        count=st.integers(0, 120),
        probes=st.lists(st.floats(0.0, 1.0), max_size=8),
        clamped=st.booleans(),
    )
    @settings(max_examples=150, deadline=None)
    def test_restore_decides_identically_after_any_updates(
        self, scale: str, seed: int, count: int, probes: list[float], clamped: bool
    ) -> None:
        """After any sequence of updates, the restored threshold decides every score alike.

        That includes the tracker's own value, where a one-ulp difference
        would flip the decision.
        """
        gr.instrumentation.configure(hooks=[])
        kind: Any = gr.Probability if scale == "probability" else gr.LogOdds

        def value(p: float) -> float:
            return p if scale == "probability" else 8.0 * p - 4.0

        bounds = {"lower": kind(value(0.2)), "upper": kind(value(0.8))} if clamped else {}
        threshold = gr.DynamicThreshold(
            target_rate=0.1, initial=kind(value(0.5)), model=MODEL, **bounds
        )
        for score in np.random.default_rng(seed).uniform(0.0, 1.0, count).tolist():
            threshold.update(kind(value(score)))
        restored = gr.DynamicThreshold.restore(threshold.snapshot_json())
        assert restored.snapshot() == threshold.snapshot()
        at = float(threshold.tracker.value)
        assert float(restored.tracker.value) == at
        for score in [at, *(value(p) for p in probes)]:
            before = threshold.decide(gr.Prediction(kind(score), MODEL))
            after = restored.decide(gr.Prediction(kind(score), MODEL))
            assert (after.above, after.threshold) == (before.above, before.threshold)


class TestCalibrationAtSmallCounts:
    def test_calibrated_rare_event_streams_stay_within_the_stated_false_alarm_rate(
        self,
    ) -> None:
        """2,000 calibrated streams at p = 0.002: alarms within 4 checks x 0.1 % + 3 sd.

        With ``min_outcomes=10`` and 10 bins, each stream of 20 labels is
        checked 4 times; docs/outcomes.md states each check's false-alarm
        probability as at most 0.1 %.
        """
        gr.instrumentation.configure(hooks=[])
        rng = np.random.default_rng(1)
        streams, labels, checks, alpha = 2000, 20, 4, 0.001
        alarmed = 0
        for _ in range(streams):
            alarms: list[object] = []
            monitor = gr.OutcomeMonitor(
                min_outcomes=10,
                ece_bound=0.01,
                bias_bounds=(-1.0, 1.0),
                on_retrain=alarms.append,
            )
            p = np.full(labels, 0.002)
            batch = gr.Prediction(gr.Probability(p), MODEL)
            monitor.record(batch)
            for i, label in enumerate((rng.random(labels) < p).tolist()):
                monitor.record_outcome(f"{batch.id}:{i}", label)
            alarmed += any(isinstance(e, gr.instrumentation.CalibrationOutOfRange) for e in alarms)
        rate = checks * alpha
        allowed = streams * rate + 3 * math.sqrt(streams * rate * (1 - rate))
        assert alarmed <= allowed, (alarmed, allowed)


@pytest.mark.integration
class TestLateRefundsInShortWindows:
    def test_a_refunded_late_count_never_takes_budget_again(
        self, redis_server: Any, namespace: str
    ) -> None:
        """A decision denied on a time-out, counted late and given back, never holds budget later.

        The limit allows 10 per second (sub-windows of 0.1 s). The server is
        busy for 0.35 s (DEBUG SLEEP) when the decision is sent; it counts
        the decision when it wakes up, and the late reply gives it back. For
        the next 1.3 s nothing is admitted, so the whole budget stays free.
        """
        import redis

        store = gr.RedisStore(
            redis.Redis(host="127.0.0.1", port=redis_server.port),
            namespace=namespace,
            deadline=0.05,
        )
        limit = gr.ActionLimit("short", max_actions=10, per="1s", store=store)
        reader = gr.RedisStore(redis_server.client(), namespace=namespace, deadline=2.0)
        check = gr.ActionLimit("short", max_actions=10, per="1s", store=reader)
        busy_client = redis_server.client()

        async def main() -> tuple[bool, list[int]]:
            assert await limit.allow_async("warm")  # a pooled connection, ready
            busy = threading.Thread(
                target=busy_client.execute_command, args=("DEBUG", "SLEEP", "0.35")
            )
            busy.start()
            try:
                await asyncio.sleep(0.05)  # the server is inside DEBUG SLEEP
                allowed = await limit.allow_async("k")
            finally:
                busy.join()
            end = time.monotonic() + 10
            while store.pipeline().busy and time.monotonic() < end:
                await asyncio.sleep(0.005)  # the late reply comes, and its refund
            remaining = []
            end = time.monotonic() + 1.3
            while time.monotonic() < end:
                remaining.append(check.remaining("k"))
                await asyncio.sleep(0.01)
            await store.aclose()
            return allowed, remaining

        allowed, remaining = asyncio.run(main())
        assert allowed is False  # timed out: denied by the default policy
        assert min(remaining) == 10, remaining


@pytest.mark.integration
class TestCancelledBatches:
    def test_the_server_counts_exactly_the_admitted_rows(
        self, own_redis_server: Any, namespace: str
    ) -> None:
        """Cancelled batches leave no count behind while the connection lives.

        2,000 guarded batches of 5 rows over one second, each under
        ``asyncio.wait_for`` with a random time-out (many are cancelled
        mid-batch), while the server is stopped (SIGSTOP) for 0.3 s. Once the
        late replies have settled, the server counts exactly the admitted
        rows: the rows a cancelled batch had counted are given back, and so is
        the row whose decision was in flight when it was cancelled
        (docs/limits.md).
        """
        import redis

        store = gr.RedisStore(
            redis.Redis(host="127.0.0.1", port=own_redis_server.port),
            namespace=namespace,
            deadline=0.02,
            probe_every=0.01,
        )
        cap = 10**6
        limit = gr.ActionLimit(
            "batches", max_actions=cap, per="1h", key=lambda row: row["user"], store=store
        )
        process = own_redis_server.process
        assert process is not None

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[limit])
        async def predict(rows: list[dict[str, str]]) -> Any:
            return np.full(len(rows), 0.9)

        async def main() -> tuple[int, int]:
            rng = random.Random(2)

            async def one() -> Any:
                await asyncio.sleep(rng.uniform(0.0, 1.0))
                try:
                    return await asyncio.wait_for(
                        predict([{"user": "u"}] * 5), timeout=rng.uniform(0.0, 0.04)
                    )
                except TimeoutError:
                    return None

            tasks = [asyncio.create_task(one()) for _ in range(2000)]
            await asyncio.sleep(0.3)
            process.send_signal(signal.SIGSTOP)
            try:
                await asyncio.sleep(0.3)
            finally:
                process.send_signal(signal.SIGCONT)
            decisions = await asyncio.gather(*tasks)
            end = time.monotonic() + 20
            while store.pipeline().busy and time.monotonic() < end:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            await store.aclose()
            admitted = sum(int(np.count_nonzero(d.act)) for d in decisions if d is not None)
            return admitted, sum(d is None for d in decisions)

        admitted, cancelled = asyncio.run(main())
        reader = gr.RedisStore(own_redis_server.client(), namespace=namespace, deadline=2.0)
        check = gr.ActionLimit("batches", max_actions=cap, per="1h", store=reader)
        counted = cap - check.remaining("u")
        assert cancelled > 0
        assert counted == admitted


@pytest.mark.integration
class TestLocalShareAcrossSyncAndAsyncGuards:
    def test_a_sync_and_an_async_guard_in_one_process_stay_within_the_cap(
        self, own_redis_server: Any, namespace: str
    ) -> None:
        """Under "local" with processes=1, one process never admits more than max_actions.

        A mechanism serves one guard, so a sync and an async guard sharing a
        budget get one ActionLimit each on the same store (as the error
        message advises). Redis admits the shared part (5 of 10), then is
        stopped (SIGSTOP); both limits admit on their own during the outage.
        docs/limits.md: "local" is never over the cap while at most
        ``processes`` processes share the namespace.
        """
        import redis

        store = gr.RedisStore(
            redis.Redis(host="127.0.0.1", port=own_redis_server.port),
            namespace=namespace,
            deadline=0.05,
            on_store_error="local",
            local_share=0.5,
            processes=1,
            trip_after=1,
            probe_every=60.0,
        )
        for_sync = gr.ActionLimit("shared", max_actions=10, per="1h", store=store)
        for_async = gr.ActionLimit("shared", max_actions=10, per="1h", store=store)
        process = own_redis_server.process
        assert process is not None

        async def admitted_async(n: int) -> int:
            admitted = sum([await for_async.allow_async("u") for _ in range(n)])
            await store.aclose()
            return admitted

        shared = sum(for_sync.allow("u") for _ in range(10))
        assert shared == 5  # max_actions less the held-back share
        process.send_signal(signal.SIGSTOP)
        try:
            during = sum(for_sync.allow("u") for _ in range(10))
            during += asyncio.run(admitted_async(10))
        finally:
            process.send_signal(signal.SIGCONT)
        assert shared + during <= 10, (shared, during)


@pytest.mark.integration
class TestLateRefundsUnderOpen:
    def test_an_action_admitted_on_a_time_out_keeps_its_late_count(
        self, redis_server: Any, namespace: str
    ) -> None:
        """Under "open", an action admitted on a time-out stays counted once the server counts it.

        The server is busy (DEBUG SLEEP 1.0) when the decision is sent: the
        decision times out and "open" admits it; the server counts it when it
        wakes up. The action was taken, so the count must stay: otherwise a
        Redis that is merely slow lets every action through uncounted.
        """
        import redis

        store = gr.RedisStore(
            redis.Redis(host="127.0.0.1", port=redis_server.port),
            namespace=namespace,
            deadline=0.05,
            on_store_error="open",
        )
        limit = gr.ActionLimit("open", max_actions=10, per="1h", store=store)
        busy_client = redis_server.client()

        async def main() -> bool:
            assert await limit.allow_async("warm")
            await asyncio.sleep(0.5)  # the pool's background warm-up: connections ready
            busy = threading.Thread(
                target=busy_client.execute_command, args=("DEBUG", "SLEEP", "1.0")
            )
            busy.start()
            try:
                await asyncio.sleep(0.3)  # the server is inside DEBUG SLEEP, even under load
                allowed = await limit.allow_async("k")
            finally:
                busy.join()
            end = time.monotonic() + 10
            while store.pipeline().busy and time.monotonic() < end:
                await asyncio.sleep(0.005)
            await store.aclose()
            return allowed

        assert asyncio.run(main()) is True  # timed out: admitted by "open"
        reader = gr.RedisStore(busy_client, namespace=namespace, deadline=2.0)
        check = gr.ActionLimit("open", max_actions=10, per="1h", store=reader)
        assert check.remaining("k") == 9  # the action taken is counted

    def test_a_sync_action_admitted_on_a_time_out_keeps_its_late_count(
        self, redis_server: Any, namespace: str
    ) -> None:
        """Under "open", a sync decision that timed out keeps the count its late reply shows."""
        import redis

        store = gr.RedisStore(
            redis.Redis(host="127.0.0.1", port=redis_server.port),
            namespace=namespace,
            deadline=0.05,
            on_store_error="open",
        )
        limit = gr.ActionLimit("open-sync", max_actions=10, per="1h", store=store)
        counter: Any = limit._counter
        busy_client = redis_server.client()
        assert limit.allow("warm")  # a pooled connection, ready
        busy = threading.Thread(target=busy_client.execute_command, args=("DEBUG", "SLEEP", "0.3"))
        busy.start()
        try:
            time.sleep(0.1)  # the server is inside DEBUG SLEEP
            assert limit.allow("k")  # timed out: admitted by "open"
        finally:
            busy.join()
        end = time.monotonic() + 10
        while counter.late and time.monotonic() < end:
            time.sleep(0.05)
            limit.allow("other")  # a later decision reads the late reply
        assert not counter.late
        reader = gr.RedisStore(busy_client, namespace=namespace, deadline=2.0)
        check = gr.ActionLimit("open-sync", max_actions=10, per="1h", store=reader)
        assert check.remaining("k") == 9  # the action taken is counted
        store.close()
