"""Action limits through Redis under real faults: a fleet stays within its cap."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import guardrail as gr
from guardrail.testing import capture_events

# One fleet process: decides one key as fast as it can for a while, through a
# server that keeps stopping, and prints what it admitted.
WORKER = """
import json, sys, time
import guardrail as gr
from guardrail.limits import RedisStore
from guardrail.testing import capture_events
import redis
port, namespace, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
gr.configure(hooks=[])
store = RedisStore(
    redis.Redis(host="127.0.0.1", port=port), namespace=namespace, deadline=0.005,
    on_store_error="local", local_share=0.5, processes=4, probe_every=0.01,
)
limit = gr.ActionLimit("flap", max_actions=150, per="1h", store=store)
admitted = degraded = 0
with capture_events() as events:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        admitted += limit.allow("k")
        time.sleep(0.001)
degraded = sum(e.decisions for e in events if isinstance(e, gr.instrumentation.LimitDegraded))
print(json.dumps({"admitted": admitted, "degraded": degraded}))
"""


class TestFleetWithinCap:
    def test_local_policy_keeps_four_processes_within_the_cap_through_a_own_redis_server(
        self, own_redis_server: Any
    ) -> None:
        """Four processes deciding one key while Redis stops and resumes stay within the cap."""
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(own_redis_server.port), "fleet", "3"],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        process = own_redis_server.process
        assert process is not None
        try:
            end = time.monotonic() + 120
            while any(p.poll() is None for p in procs) and time.monotonic() < end:
                process.send_signal(signal.SIGSTOP)
                time.sleep(0.05)
                process.send_signal(signal.SIGCONT)
                time.sleep(0.1)
        finally:
            process.send_signal(signal.SIGCONT)
        reports = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
        assert all(p.returncode == 0 for p in procs)
        admitted = sum(r["admitted"] for r in reports)
        assert sum(r["degraded"] for r in reports) > 0  # the outages happened
        # Shared decisions admit at most 75 (75 are held back); the rest came from
        # the processes' own shares during outages, and the whole stays within 150.
        assert 75 < admitted <= 150


def shared(server: Any, namespace: str, **settings: Any) -> Any:
    import redis

    from guardrail.limits import RedisStore

    client = redis.Redis(host="127.0.0.1", port=server.port)
    settings = {"deadline": 0.5, "probe_every": 0.01, **settings}
    return RedisStore(client, namespace=namespace, **settings)


class TestLostState:
    def test_a_restart_without_persistence_denies_for_the_rest_of_the_window(
        self, own_redis_server: Any
    ) -> None:
        """After Redis restarts empty, nothing more is admitted in the window; it is reported."""
        limit = gr.ActionLimit(
            "lost", max_actions=100, per="1h", store=shared(own_redis_server, "r1")
        )
        assert sum(limit.allow("k") for _ in range(120)) == 100
        own_redis_server.stop()
        own_redis_server.start()
        with capture_events() as events:
            assert sum(limit.allow("k") for _ in range(120)) == 0
        degraded = [e for e in events if isinstance(e, gr.instrumentation.LimitDegraded)]
        assert degraded
        assert "lost" in degraded[0].error

    def test_reset_counts_afresh_after_a_loss(self, own_redis_server: Any) -> None:
        """With on_state_lost="reset", the limit counts afresh once the loss is seen."""
        store = shared(own_redis_server, "r2", on_state_lost="reset")
        limit = gr.ActionLimit("lost", max_actions=3, per="1h", store=store)
        assert [limit.allow("k") for _ in range(4)] == [True] * 3 + [False]
        own_redis_server.stop()
        own_redis_server.start()
        assert [limit.allow("k") for _ in range(5)] == [False] + [True] * 3 + [False]

    def test_an_evicted_epoch_marker_is_a_loss(self, own_redis_server: Any) -> None:
        """Limit keys evicted with the namespace's marker are seen as lost, not trusted as empty."""
        limit = gr.ActionLimit(
            "lost", max_actions=2, per="1h", store=shared(own_redis_server, "r3")
        )
        assert [limit.allow("k") for _ in range(3)] == [True, True, False]
        client = own_redis_server.client()
        client.delete(*client.keys("guardrail:r3:*"))  # what an eviction does
        assert [limit.allow("k") for _ in range(3)] == [False] * 3

    def test_an_evicting_memory_policy_is_warned_about(
        self, own_redis_server: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A server whose maxmemory-policy may evict limit keys is warned about at first contact."""
        client = own_redis_server.client()
        client.config_set("maxmemory-policy", "allkeys-lru")
        try:
            limit = gr.ActionLimit(
                "warn", max_actions=2, per="1h", store=shared(own_redis_server, "r4")
            )
            with caplog.at_level("WARNING", logger="guardrail"):
                assert limit.allow("k")
        finally:
            client.config_set("maxmemory-policy", "noeviction")
        assert "allkeys-lru" in caplog.text


class TestSmallerReports:
    def test_a_second_outage_soon_after_the_first_is_reported(self, own_redis_server: Any) -> None:
        """An outage that starts within a second of the last one's event gets its own event."""
        store = shared(own_redis_server, "o1", deadline=0.2)
        limit = gr.ActionLimit("twice", max_actions=100, per="1h", store=store)
        assert limit.allow("k")
        process = own_redis_server.process
        with capture_events() as events:
            for _ in range(2):
                process.send_signal(signal.SIGSTOP)
                try:
                    limit.allow("k")
                finally:
                    process.send_signal(signal.SIGCONT)
                time.sleep(0.05)
                store.close()  # the stopped connection's late reply is dropped with it
                limit.allow("k")
        kinds = [e.kind for e in events]
        assert kinds.count("limit.degraded") == 2
        assert kinds.count("limit.recovered") == 2

    def test_a_failing_holdout_marks_the_decision_degraded(self) -> None:
        """A holdout whose unit function raises leaves the decision marked degraded."""

        def unit(row: dict[str, Any]) -> str:
            raise KeyError("user")

        @gr.guard(
            model=gr.ModelRef(name="m", version="1"),
            returns=gr.Probability,
            threshold=gr.Threshold(0.5, scale=gr.Probability),
            holdout=gr.Holdout(fraction=0.1, unit=unit, salt="s"),
        )
        def predict(row: dict[str, Any]) -> float:
            return 0.9

        assert predict({"x": 1.0}).degraded


class TestDeadline:
    def test_one_slow_reply_does_not_send_later_decisions_to_the_policy(
        self, own_redis_server: Any
    ) -> None:
        """A decision cut off by a stalled server is degraded; the next one asks Redis again."""
        store = shared(own_redis_server, "d1", deadline=0.05, probe_every=600)
        limit = gr.ActionLimit("slow", max_actions=100, per="1h", store=store)
        assert limit.allow("k")
        process = own_redis_server.process
        with capture_events() as events:
            process.send_signal(signal.SIGSTOP)
            try:
                assert not limit.allow("k")
            finally:
                process.send_signal(signal.SIGCONT)
            assert limit.allow("k")
        kinds = [e.kind for e in events]
        assert (kinds.count("limit.degraded"), kinds.count("limit.recovered")) == (1, 1)

    def test_consecutive_failures_trip_the_policy(self, own_redis_server: Any) -> None:
        """trip_after failures in a row send the next decisions to the policy until the probe."""
        store = shared(own_redis_server, "d2", deadline=0.05, probe_every=600, trip_after=2)
        limit = gr.ActionLimit("slow", max_actions=100, per="1h", store=store)
        assert limit.allow("k")
        process = own_redis_server.process
        process.send_signal(signal.SIGSTOP)
        try:
            assert not limit.allow("k")
            assert not limit.allow("k")
        finally:
            process.send_signal(signal.SIGCONT)
        # Redis answers again, but the tripped limit does not ask it until the probe.
        assert not limit.allow("k")

    def test_a_decision_that_timed_out_but_was_counted_is_refunded(
        self, own_redis_server: Any
    ) -> None:
        """A decision cut off by the deadline but counted by the server gives its count back."""
        store = shared(own_redis_server, "d3", deadline=0.05, probe_every=0.01)
        limit = gr.ActionLimit("late", max_actions=3, per="1h", store=store)
        assert limit.allow("k")
        process = own_redis_server.process
        process.send_signal(signal.SIGSTOP)
        try:
            assert not limit.allow("k")  # timed out (the server counts it when it resumes)
        finally:
            process.send_signal(signal.SIGCONT)
        end = time.monotonic() + 10
        while time.monotonic() < end and own_redis_server.client().ping() is not True:
            time.sleep(0.01)
        time.sleep(0.1)  # the late reply reaches the parked connection
        assert [limit.allow("k") for _ in range(3)] == [True, True, False]

    @pytest.mark.parametrize(
        ("fault", "trip_after", "cancelled"),
        [
            ("sigstop", 3, False),
            ("debug-sleep", 3, False),
            ("sigstop", 1, False),
            ("debug-sleep", 1, False),
            ("sigstop", 3, True),
            ("debug-sleep", 3, True),
        ],
    )
    def test_async_decisions_cut_off_by_the_default_deadline_are_counted_exactly(
        self, own_redis_server: Any, fault: str, trip_after: int, cancelled: bool
    ) -> None:
        """With the default 5 ms deadline, what the server counted is exactly what was admitted.

        Decisions sent while the server is stopped (SIGSTOP) or busy (DEBUG
        SLEEP) time out (or are cancelled) and are not admitted; the server
        counts them when it gets to them, and the late replies give those
        counts back. Healthy decisions
        that time out on a busy machine are settled the same way, so the
        equality holds whatever the timing; also while the late replies come
        in during a trip (trip_after=1), when decisions skip Redis, and when
        the caller gives up (cancels) before the deadline.
        """
        import redis

        from guardrail.limits import RedisStore

        store = RedisStore(
            redis.Redis(host="127.0.0.1", port=own_redis_server.port),
            namespace=f"exact-{fault}-{trip_after}-{cancelled}",
            probe_every=0.01 if trip_after > 1 else 0.5,
            trip_after=trip_after,
        )
        assert store.deadline == 0.005
        limit = gr.ActionLimit("exact", max_actions=1000, per="1h", store=store)
        process = own_redis_server.process
        assert process is not None

        def start_fault() -> threading.Thread | None:
            if fault == "sigstop":
                process.send_signal(signal.SIGSTOP)
                return None
            busy = threading.Thread(
                target=own_redis_server.client().execute_command, args=("DEBUG", "SLEEP", "0.3")
            )
            busy.start()
            time.sleep(0.1)  # the server is inside DEBUG SLEEP
            return busy

        def end_fault(busy: threading.Thread | None) -> None:
            if busy is None:
                process.send_signal(signal.SIGCONT)
            else:
                busy.join()

        async def main() -> tuple[int, bool]:
            admitted = 0
            for _ in range(3):
                admitted += sum([await limit.allow_async("k") for _ in range(20)])
                busy = start_fault()
                allowed = False
                try:
                    if cancelled:  # the caller gives up before the deadline
                        async with asyncio.timeout(0.003):
                            allowed = await limit.allow_async("k")
                    else:  # sent, and counted once resumed
                        allowed = await limit.allow_async("k")
                except TimeoutError:
                    pass  # cancelled while waiting: not admitted
                finally:
                    end_fault(busy)
                admitted += allowed
                await asyncio.sleep(store.probe_every + 0.05)  # then decisions ask Redis again
            # The late replies and their refunds finish in the background (bound: a busy machine).
            end = time.monotonic() + 20
            while store.pipeline().busy and time.monotonic() < end:
                await asyncio.sleep(0.01)
            settled = not store.pipeline().busy
            await store.aclose()
            return admitted, settled

        admitted, settled = asyncio.run(main())
        assert settled
        # Counted on the server == admitted: every late count was given back. Read
        # with a roomy deadline: the check must not depend on the machine's load.
        reader = RedisStore(store.sync_client(), namespace=store.namespace, deadline=2.0)
        check = gr.ActionLimit("exact", max_actions=1000, per="1h", store=reader)
        assert check.remaining("k") == 1000 - admitted
