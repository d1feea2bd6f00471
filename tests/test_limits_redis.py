"""Action limits shared through a real redis-server."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np
import pytest

import guardrail as gr
from guardrail.testing import capture_events

pytestmark = pytest.mark.integration  # a real redis-server, stopped, hung and restarted


@pytest.fixture(autouse=True)
def _quiet() -> None:
    gr.configure(hooks=[])
    return


def store(server: Any, namespace: str, **kwargs: Any) -> gr.RedisStore:
    # A roomy deadline where the test is not about the deadline: the machine may be busy.
    kwargs.setdefault("deadline", 0.25)
    return gr.RedisStore(server.client(), namespace=namespace, **kwargs)


class TestRedisStore:
    def test_counts_and_denies(self, redis_server: Any, namespace: str) -> None:
        """A Redis-backed limit allows max_actions, then denies."""
        limit = gr.ActionLimit(
            "block_card", max_actions=3, per="1m", store=store(redis_server, namespace)
        )
        assert [limit.allow() for _ in range(5)] == [True, True, True, False, False]
        assert limit.remaining() == 0
        assert 59 < limit.reset_at() - time.time() <= 66 + 1

    def test_limits_share_counts_across_stores(self, redis_server: Any, namespace: str) -> None:
        """Two stores (two replicas) with one namespace share one budget."""
        a = gr.ActionLimit("sms", max_actions=2, per="1m", store=store(redis_server, namespace))
        b = gr.ActionLimit("sms", max_actions=2, per="1m", store=store(redis_server, namespace))
        assert a.allow("u")
        assert b.allow("u")
        assert not a.allow("u")
        assert not b.allow("u")
        other = store(redis_server, namespace + "-other")
        c = gr.ActionLimit("sms", max_actions=2, per="1m", store=other)
        assert c.allow("u")

    def test_several_windows(self, redis_server: Any, namespace: str) -> None:
        """Every window applies; remaining is the tightest."""
        limit = gr.ActionLimit(
            "sms",
            windows=[gr.limits.Window(2, "1s", buckets=2), gr.limits.Window(3, "1h")],
            store=store(redis_server, namespace),
        )
        assert [limit.allow() for _ in range(3)] == [True, True, False]
        time.sleep(1.6)
        assert limit.remaining() == 1
        assert [limit.allow(), limit.allow()] == [True, False]

    def test_exceeded_and_near_events(self, redis_server: Any, namespace: str) -> None:
        """The script reports the near crossing and the first denial of a sub-window."""
        limit = gr.ActionLimit(
            "ban", max_actions=4, per="1h", near=0.5, store=store(redis_server, namespace)
        )
        with capture_events() as events:
            for _ in range(7):
                limit.allow("k")
        assert [e.kind for e in events] == ["limit.near", "limit.exceeded"]

    def test_keys_cannot_collide_or_escape(self, redis_server: Any, namespace: str) -> None:
        """Hostile keys are hashed: every Redis key has the namespace prefix and a fixed size."""
        limit = gr.ActionLimit("k", max_actions=1, per="1m", store=store(redis_server, namespace))
        hostile = ["", ":", "a:b", "../x", "{tag}", "*", "\n", "é", "x" * 10_000, "\udcff"]
        assert all(limit.allow(key) for key in hostile)
        assert not any(limit.allow(key) for key in hostile)
        keys = redis_server.client().keys(f"guardrail:{namespace}:k:*")
        assert len(keys) == len(hostile)
        assert {len(k) for k in keys} == {len(f"guardrail:{namespace}:k:12345678:") + 32}

    def test_a_limit_redefined_with_other_windows_starts_afresh(
        self, redis_server: Any, namespace: str
    ) -> None:
        """Other windows under the same name start from zero; a new max_actions keeps the counts."""
        shared = store(redis_server, namespace)
        minute = gr.ActionLimit("sms", max_actions=20, per="1m", store=shared)
        assert all(minute.allow("u") for _ in range(11))
        hour = gr.ActionLimit("sms", max_actions=100, per="1h", store=shared)
        assert hour.remaining("u") == 100
        assert hour.allow("u")
        both = gr.ActionLimit(
            "sms", windows=[gr.limits.Window(20, "1m"), gr.limits.Window(100, "1h")], store=shared
        )
        assert both.remaining("u") == 20
        raised = gr.ActionLimit("sms", max_actions=30, per="1m", store=shared)
        assert raised.remaining("u") == 19
        assert minute.remaining("u") == 9

    def test_async(self, redis_server: Any, namespace: str) -> None:
        """allow_async and async action functions use redis.asyncio."""
        import redis.asyncio

        client = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port)
        shared = gr.RedisStore(client, namespace=namespace, deadline=0.25)
        limit = gr.ActionLimit(
            "mail", max_actions=2, per="1m", key=lambda user: user, fallback="skipped", store=shared
        )

        @limit.guard
        async def mail(user: str) -> str:
            return "sent"

        async def main() -> list[Any]:
            try:
                return [await mail("u") for _ in range(3)] + [await limit.allow_async("v")]
            finally:
                await shared.aclose()

        assert asyncio.run(main()) == ["sent", "sent", "skipped", True]
        # A second event loop gets its own connections.
        assert asyncio.run(main()) == ["skipped", "skipped", "skipped", True]
        assert limit.remaining("u") == 0

    def test_exact_under_thread_contention(self, redis_server: Any, namespace: str) -> None:
        """8 threads x 500 attempts at a limit of 1,000 admit exactly 1,000."""
        limit = gr.ActionLimit(
            "busy",
            max_actions=1000,
            per="1h",
            store=store(redis_server, namespace, deadline=1.0),
        )
        allowed = [0] * 8
        barrier = threading.Barrier(8)

        def attempt(i: int) -> None:
            barrier.wait()
            allowed[i] = sum(limit.allow() for _ in range(500))

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(allowed) == 1000

    def test_exact_across_processes(self, redis_server: Any, namespace: str) -> None:
        """4 processes sharing a Redis limit of 100 admit exactly 100."""
        code = """
import sys
import redis, guardrail as gr
gr.configure(hooks=[])
port, namespace = int(sys.argv[1]), sys.argv[2]
store = gr.RedisStore(redis.Redis(host="127.0.0.1", port=port), namespace=namespace,
                      deadline=1.0)
limit = gr.ActionLimit("shared", max_actions=100, per="1h", store=store)
limit.remaining()  # connect before the start
print("ready", flush=True)
sys.stdin.readline()
print(sum(limit.allow() for _ in range(60)), flush=True)
"""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(redis_server.port), namespace],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(4)
        ]
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in procs:  # all start together
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        counts = [int(p.communicate(timeout=60)[0]) for p in procs]
        assert sum(counts) == 100
        assert all(p.returncode == 0 for p in procs)


class TestFailurePolicy:
    @pytest.mark.parametrize(
        ("policy", "during"),
        [("closed", [False] * 5), ("open", [True] * 5), ("local", [True] * 2 + [False] * 3)],
    )
    def test_redis_stopped_mid_run(
        self, redis_server: Any, namespace: str, policy: str, during: list[bool]
    ) -> None:
        """Redis dies: decisions follow the policy without waiting on Redis; then recover."""
        deadline = 0.25
        limit = gr.ActionLimit(
            "outage",
            max_actions=4,
            per="1h",
            store=store(
                redis_server,
                namespace,
                deadline=deadline,
                on_store_error=policy,
                local_share=0.5,
                probe_every=0.05,
            ),
        )
        assert limit.allow()
        assert limit.allow()
        slowest = 0.0
        with capture_events() as events:
            redis_server.stop()
            try:
                results = []
                for _ in range(5):
                    t = time.perf_counter()
                    results.append(limit.allow())
                    slowest = max(slowest, time.perf_counter() - t)
                assert results == during
            finally:
                redis_server.start()
            time.sleep(0.1)
            # The restarted server lost the counts: denied for the rest of the window.
            assert [limit.allow() for _ in range(5)] == [False] * 5
        # Refused at once, or cut off at the deadline; the bound allows a busy machine.
        assert slowest < deadline + 1.0
        kinds = [e.kind for e in events]
        assert kinds[0] == "limit.degraded"
        assert "limit.recovered" in kinds
        recovered = next(e for e in events if isinstance(e, gr.instrumentation.LimitRecovered))
        assert recovered.degraded_decisions == 5

    def test_a_hung_server_is_cut_off_at_the_deadline(
        self, redis_server: Any, namespace: str
    ) -> None:
        """A server that stops answering (SIGSTOP) costs one deadline, then the policy."""
        deadline = 0.2
        limit = gr.ActionLimit(
            "hung",
            max_actions=10,
            per="1h",
            on_exceed="raise",
            store=store(redis_server, namespace, deadline=deadline, probe_every=1.0, trip_after=1),
        )
        assert limit.allow()
        assert redis_server.process is not None
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            took = []
            for _ in range(3):
                t = time.perf_counter()
                with pytest.raises(gr.errors.ActionLimitExceededError) as info:
                    limit.allow()
                took.append(time.perf_counter() - t)
                assert info.value.degraded
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        # The first decision waits for the deadline (plus generous scheduling noise on
        # a busy machine); the next ones skip Redis until the probe, so do not wait.
        assert deadline <= took[0] < deadline + 1.5
        assert max(took[1:]) < deadline
        time.sleep(1.1)  # past probe_every: the next decision asks Redis again
        assert limit.allow()

    def test_async_decisions_keep_the_deadline(self, redis_server: Any, namespace: str) -> None:
        """An async decision against a hung server returns at the deadline."""
        import redis.asyncio

        client = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port)
        deadline = 0.2
        shared = gr.RedisStore(
            client, namespace=namespace, on_store_error="open", deadline=deadline
        )
        limit = gr.ActionLimit("hung-async", max_actions=10, per="1h", store=shared)

        async def main() -> tuple[bool, float]:
            assert await limit.allow_async()
            assert redis_server.process is not None
            redis_server.process.send_signal(signal.SIGSTOP)
            try:
                t = time.perf_counter()
                allowed = await limit.allow_async()
                return allowed, time.perf_counter() - t
            finally:
                redis_server.process.send_signal(signal.SIGCONT)
                await shared.aclose()

        allowed, took = asyncio.run(main())
        assert allowed
        # Cut off at the deadline, not after Redis's own time-outs (generous: a busy machine).
        assert deadline <= took < deadline + 1.5

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"namespace": "a:b"}, "namespace"),
            ({"namespace": ""}, "namespace"),
            ({"deadline": 0}, "deadline"),
            ({"deadline": -1}, "deadline"),
            ({"on_store_error": "retry"}, "on_store_error"),
            ({"local_share": 0}, "local_share"),
            ({"local_share": 2}, "local_share"),
        ],
    )
    def test_bad_store_configuration(
        self, redis_server: Any, kwargs: dict[str, Any], message: str
    ) -> None:
        """Bad store settings are ConfigErrors."""
        with pytest.raises(gr.ConfigError, match=message):
            gr.RedisStore(redis_server.client(), **kwargs)

    def test_the_redis_floor_calls_get_connection_without_arguments(self) -> None:
        """The redis extra needs redis-py 5.3+, where pool.get_connection() takes no arguments."""
        import inspect
        import pathlib
        import re
        import tomllib

        import redis

        pyproject = pathlib.Path(__file__).parent.parent / "pyproject.toml"
        extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
        (requirement,) = extras["redis"]
        floor = re.fullmatch(r"redis>=(\d+)\.(\d+)(?:\.\d+)?", requirement)
        assert floor is not None
        # redis-py 5.0-5.2 require a command name, so the store's call failed on every decision.
        assert (int(floor[1]), int(floor[2])) >= (5, 3)
        parameters = list(
            inspect.signature(redis.ConnectionPool.get_connection).parameters.values()
        )
        assert all(
            p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            for p in parameters[1:]
        )

    def test_not_a_client(self) -> None:
        """Something that is not a redis client is refused."""
        with pytest.raises(gr.ConfigError, match="client"):
            gr.RedisStore(object())


class TestThreadSafety:
    def test_outages_are_counted_exactly_across_threads(
        self, redis_server: Any, namespace: str
    ) -> None:
        """Failures and answers racing in threads: every degraded decision is in a recovery."""
        shared = store(redis_server, namespace, on_store_error="open", probe_every=1e-6)
        limit = gr.ActionLimit("recover", max_actions=1_000_000, per="1h", store=shared)
        counter, report = limit._counter, limit._report
        threads_per_round, rounds = 8, 20
        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads often, so races show

        def fail_then_decide(barrier: threading.Barrier) -> None:
            barrier.wait()
            # A decision Redis could not answer (the store's own failure path) ...
            failed = counter._failed(ConnectionError("refused"), "", 1)  # type: ignore[attr-defined]
            report.settle(failed, "", None)
            # ... and one it answers.
            limit.allow()

        try:
            with capture_events() as events:
                for _ in range(rounds):
                    barrier = threading.Barrier(threads_per_round)
                    threads = [
                        threading.Thread(target=fail_then_decide, args=(barrier,))
                        for _ in range(threads_per_round)
                    ]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                time.sleep(0.001)
                assert limit.allow()
        finally:
            sys.setswitchinterval(switch)
            shared.close()  # and the connections kept for late replies
        recovered = [e for e in events if isinstance(e, gr.instrumentation.LimitRecovered)]
        # Nothing lost: each degraded decision is in a recovery event, or (if its
        # count landed just after a recovery) still waiting for the next one.
        reported = sum(e.degraded_decisions for e in recovered)
        assert reported + report.outage == report.degraded_total
        assert reported > 0
        assert all(e.degraded_decisions > 0 for e in recovered)

    def test_each_event_loop_keeps_its_pipeline(self, redis_server: Any) -> None:
        """Threads running their own event loops each get one pipeline, kept for their loop."""
        shared = store(redis_server, "loops")
        threads_per_round, rounds = 8, 20
        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            for _ in range(rounds):
                barrier = threading.Barrier(threads_per_round)
                kept: list[bool] = []

                async def twice(barrier: threading.Barrier, kept: list[bool]) -> None:
                    barrier.wait()
                    first = shared.pipeline()
                    await asyncio.sleep(0)
                    kept.append(shared.pipeline() is first)
                    await shared.aclose()

                threads = [
                    threading.Thread(target=asyncio.run, args=(twice(barrier, kept),))
                    for _ in range(threads_per_round)
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                assert kept == [True] * threads_per_round
        finally:
            sys.setswitchinterval(switch)


class TestRefunds:
    def test_what_a_later_limit_denies_is_given_back_to_redis(
        self, redis_server: Any, namespace: str
    ) -> None:
        """Rows a later limit denies, or a call it raises out of, leave no count in Redis."""
        model = gr.ModelRef(name="fraud", version="1")
        threshold = gr.Threshold(0.5, scale=gr.Probability, model=model)
        shared = gr.ActionLimit(
            "per_merchant",
            max_actions=5,
            per="1h",
            key=lambda row: str(int(row[0])),
            store=store(redis_server, namespace),
        )

        def guarded(overall: gr.ActionLimit) -> Any:
            @gr.guard(
                model=model, returns=gr.Probability, threshold=threshold, limits=[shared, overall]
            )
            def predict(rows: Any) -> Any:
                return rows[:, 1]

            return predict

        vetoing = guarded(gr.ActionLimit("overall", max_actions=2, per="1h"))
        d = vetoing(np.array([[1.0, 0.9], [1.0, 0.9], [1.0, 0.9], [2.0, 0.9]]))
        assert d.act.tolist() == [True, True, False, False]
        assert shared.remaining("1") == 3
        assert shared.remaining("2") == 5
        del vetoing  # a limit serves one live guard: the next guard takes it over
        gc.collect()
        raising = guarded(gr.ActionLimit("raising", max_actions=1, per="1h", on_exceed="raise"))
        with pytest.raises(gr.errors.ActionLimitExceededError):
            raising(np.array([[1.0, 0.9], [1.0, 0.9], [2.0, 0.9]]))
        assert shared.remaining("1") == 3
        assert shared.remaining("2") == 5
