"""The async Redis path under attack: faults that try to break its documented promises."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest

import guardrail as gr
from guardrail._redis_pipeline import pack
from guardrail.limits import Window


def store_on(server: Any, namespace: str, **options: Any) -> gr.RedisStore:
    import redis

    return gr.RedisStore(
        redis.Redis(host="127.0.0.1", port=server.port), namespace=namespace, **options
    )


@pytest.mark.integration
class TestWriterErrors:
    def test_a_command_that_fails_to_encode_fails_alone(
        self, redis_server: Any, namespace: str
    ) -> None:
        """A command whose encoding raises fails alone; the others' replies stay matched."""
        store = store_on(redis_server, namespace, deadline=5.0)

        def broken() -> list[bytes]:
            raise ValueError("cannot encode")

        async def main() -> list[Any]:
            pipeline = store.pipeline()
            await pipeline.submit([pack("PING")])  # connected
            futures = [
                pipeline.submit([pack("ECHO", "a")]),
                pipeline.submit(broken),
                pipeline.submit([pack("ECHO", "c")]),
            ]
            got = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), timeout=10
            )
            later = await asyncio.wait_for(pipeline.submit([pack("ECHO", "d")]), timeout=10)  # type: ignore[arg-type]
            await store.aclose()
            return [*got, later]

        a, b, c, d = asyncio.run(main())
        assert (a, c, d) == (b"a", b"c", b"d")
        assert isinstance(b, ValueError)


@pytest.mark.integration
class TestScriptFlush:
    def test_an_async_refund_after_a_script_flush_still_gives_back(
        self, redis_server: Any, namespace: str
    ) -> None:
        """A pipelined refund that meets NOSCRIPT (scripts flushed) is sent again, not lost."""
        store = store_on(redis_server, namespace, deadline=5.0)
        counter = store.bind("flush", (Window(10, "1h"),), 0.8)
        admin = redis_server.client()

        async def main() -> None:
            mark = counter.mark()
            assert await counter.acquire_async("k", 3) & 2 == 0
            admin.script_flush()  # type: ignore[attr-defined]
            await counter.refund_async("k", 3, mark)
            await store.aclose()

        asyncio.run(main())
        assert counter.peek("k")[0] == 10

    def test_a_late_refund_after_a_script_flush_still_gives_back(
        self, redis_server: Any, namespace: str
    ) -> None:
        """A cancelled decision's count comes back even when the scripts were flushed meanwhile."""
        store = store_on(redis_server, namespace, deadline=5.0)
        counter = store.bind("flush-late", (Window(10, "1h"),), 0.8)

        async def main() -> None:
            await counter.acquire_async("warm", 1)  # connected, scripts loaded
            pipeline = store.pipeline()
            task = asyncio.ensure_future(counter.acquire_async("k", 2))
            await asyncio.sleep(0)  # submitted
            # Written ahead of the decision's reply: the script cache is empty when
            # the late reply's refund is written.
            pipeline.submit([pack("SCRIPT", "FLUSH")], wait=False)
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await store.aclose()

        asyncio.run(main())
        assert counter.peek("k")[0] == 10


@pytest.mark.integration
class TestDeadlineTimer:
    def test_a_submission_as_the_timer_fires_does_not_push_back_an_earlier_deadline(
        self, redis_server: Any, namespace: str
    ) -> None:
        """A decision submitted in the turn the timer fires never delays an older one's time-out."""
        deadline = 2.0
        store = store_on(redis_server, namespace, deadline=deadline)
        admin = redis_server.client()
        key = f"{namespace}:never"

        async def main() -> tuple[float, float, float]:
            loop = asyncio.get_running_loop()
            pipeline = store.pipeline()
            await pipeline.submit([pack("PING")])  # connected
            t0 = loop.time()
            # A reply that does not come (until the list is pushed to).
            first = pipeline.submit([pack("BLPOP", key, 60)], t0 + deadline)
            assert first is not None
            time.sleep(0.5)  # a busy loop: the write, and so the deadline, starts later
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            written = pipeline.waiting[0].expires
            assert written is not None
            submitted: list[asyncio.Future[Any] | None] = []

            def stall() -> None:
                time.sleep(0.3)  # the timer and the next submission fall due together

            loop.call_at(t0 + deadline - 0.1, stall)
            loop.call_at(
                t0 + deadline + 0.05,
                lambda: submitted.append(pipeline.submit([pack("PING")], loop.time() + deadline)),
            )
            with pytest.raises(TimeoutError):
                await first
            timed_out = loop.time()
            admin.lpush(key, b"x")  # type: ignore[attr-defined]
            assert submitted
            await asyncio.gather(submitted[0], return_exceptions=True)  # type: ignore[arg-type]
            await store.aclose()
            return written, timed_out, t0

        written, timed_out, t0 = asyncio.run(main())
        assert written >= t0 + deadline + 0.4  # the write began late
        assert timed_out < written + 0.8  # not at the later submission's deadline


@pytest.mark.integration
class TestNilReplies:
    def test_a_nil_reply_is_a_reply(self, redis_server: Any, namespace: str) -> None:
        """A nil reply resolves its command with None and fails nothing else on the connection."""
        store = store_on(redis_server, namespace, deadline=5.0)

        async def main() -> list[Any]:
            pipeline = store.pipeline()
            futures = [
                pipeline.submit([pack("GET", f"{namespace}:missing")]),
                pipeline.submit([pack("ECHO", "after")]),
            ]
            got = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True),  # type: ignore[arg-type]
                timeout=10,
            )
            await store.aclose()
            return got

        assert asyncio.run(main()) == [None, b"after"]

    def test_an_async_process_adopts_an_epoch_another_process_made_first(
        self, redis_server: Any, namespace: str
    ) -> None:
        """When another process renews a lost epoch first, async decisions adopt it and recover."""
        mine = store_on(redis_server, namespace, deadline=5.0, on_state_lost="reset")
        other = store_on(redis_server, namespace, deadline=5.0, on_state_lost="reset")
        counter = mine.bind("lost", (Window(100, "1h"),), 0.8)
        theirs = other.bind("lost", (Window(100, "1h"),), 0.8)
        admin = redis_server.client()

        async def main() -> list[int]:
            assert await counter.acquire_async("k", 1) == 0  # connected, epoch known
            admin.delete(f"guardrail:{namespace}:epoch")  # type: ignore[attr-defined]
            assert theirs.acquire("k", 1) & 4  # lost: the other process makes the new epoch
            codes = [await counter.acquire_async("k", 1) for _ in range(10)]
            await mine.aclose()
            return codes

        codes = asyncio.run(main())
        assert codes[0] & 4  # lost here too
        assert codes[-1] == 0, codes  # then decided by Redis again
        assert "no reply" not in counter.last_error


@pytest.mark.integration
class TestLostEpoch:
    def test_a_lost_epoch_is_renewed_without_waiting_for_the_next_decision(
        self, redis_server: Any, namespace: str
    ) -> None:
        """A decision that finds the counts lost renews the epoch at once; aclose does not stall."""
        store = store_on(redis_server, namespace, deadline=5.0, on_state_lost="reset")
        counter = store.bind("renew", (Window(100, "1h"),), 0.8)
        admin = redis_server.client()
        marker = f"guardrail:{namespace}:epoch"

        async def main() -> float:
            assert await counter.acquire_async("k", 1) == 0  # connected
            admin.delete(marker)  # type: ignore[attr-defined]
            assert await counter.acquire_async("k", 1) & 4  # lost
            started = time.monotonic()
            await store.aclose()
            return time.monotonic() - started

        closing = asyncio.run(main())
        renewed = admin.get(marker)  # type: ignore[attr-defined]
        assert renewed is not None
        assert store.epoch == renewed.decode()
        assert closing < 3.0  # not the 5 s drain of a queue nobody writes


@pytest.mark.integration
class TestLongStop:
    def test_a_stop_longer_than_late_for_leaves_nothing_behind(
        self, own_redis_server: Any, namespace: str
    ) -> None:
        """Decisions through a 6 s SIGSTOP stay bounded in memory, and Redis decides again after."""
        from guardrail._redis_pipeline import LATE_FOR

        store = store_on(own_redis_server, namespace, deadline=0.2, probe_every=0.5)
        counter = store.bind("stop", (Window(10**6, "1h"),), 0.8)
        process = own_redis_server.process
        assert process is not None

        async def main() -> tuple[int, int, int, float]:
            pipeline = store.pipeline()
            assert await counter.acquire_async("k", 1) == 0
            most = 0
            process.send_signal(signal.SIGSTOP)
            try:
                end = time.monotonic() + LATE_FOR + 1.0
                while time.monotonic() < end:
                    await asyncio.gather(*(counter.acquire_async("k", 1) for _ in range(20)))
                    sent = sum(len(link.sent) for link in pipeline.links)
                    most = max(most, len(pipeline.queue) + len(pipeline.waiting) + sent)
                    await asyncio.sleep(0.01)
            finally:
                process.send_signal(signal.SIGCONT)
            answered = 0
            end = time.monotonic() + 30
            while answered < 10 and time.monotonic() < end:
                code = await counter.acquire_async("k", 1)
                answered = answered + 1 if code == 0 else 0
                await asyncio.sleep(0.05)
            started = time.monotonic()
            await store.aclose()
            closing = time.monotonic() - started
            pending = [e for e in pipeline.waiting if e.future is not None and not e.future.done()]
            return most, answered, len(pending), closing

        most, answered, waiting, closing = asyncio.run(main())
        assert answered == 10  # Redis decides again
        assert most < 2000  # not every decision made during the stop
        assert waiting == 0  # every decision was answered or timed out
        assert closing < 3.0


@pytest.mark.integration
class TestKilledConnection:
    def test_killing_the_connection_mid_burst_never_undercounts(
        self, redis_server: Any, namespace: str
    ) -> None:
        """CLIENT KILL during bursts with cancellations: Redis counts at least what was admitted."""
        import random

        import redis

        name = f"kill-{namespace}"
        store = gr.RedisStore(
            redis.Redis(host="127.0.0.1", port=redis_server.port, client_name=name),
            namespace=namespace,
            deadline=2.0,
            trip_after=10**6,
        )
        cap = 10**6
        counter = store.bind("kill", (Window(cap, "1h"),), 0.8)
        admin = redis_server.client()

        def kill() -> None:
            for client in admin.client_list():  # type: ignore[attr-defined]
                if client.get("name") == name:
                    command = ("CLIENT", "KILL", "ID", client["id"])
                    admin.execute_command(*command)  # type: ignore[attr-defined]

        async def main() -> tuple[int, int, int, int]:
            rng = random.Random(7)
            admitted = cancelled = degraded = 0
            for round_ in range(20):
                tasks = [
                    asyncio.create_task(counter.acquire_async(f"k{i % 3}", 1)) for i in range(200)
                ]
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)
                if round_ % 2 == 0:
                    await asyncio.to_thread(kill)
                for task in rng.sample(tasks, 20):
                    task.cancel()
                for code in await asyncio.gather(*tasks, return_exceptions=True):
                    if isinstance(code, BaseException):
                        cancelled += 1
                    else:
                        admitted += code & 2 == 0
                        degraded += code & 4 != 0
            final = await counter.acquire_async("k0", 1)
            await store.aclose()
            return admitted + (final & 2 == 0), cancelled, degraded, final

        admitted, cancelled, degraded, final = asyncio.run(main())
        counted = sum(cap - counter.peek(f"k{i}")[0] for i in range(3))
        assert final & 6 == 0  # Redis decides (and admits) after the kills
        assert cancelled > 0
        assert degraded > 0  # the kills failed decisions in flight
        assert counted >= admitted


@pytest.mark.integration
class TestDeadlineUnderLoad:
    def test_time_outs_come_at_the_deadline_under_steady_load(
        self, own_redis_server: Any, namespace: str
    ) -> None:
        """With the server stopped, steady async decisions time out at their deadline (p99).

        A decision submitted in the turn the deadline timer fired used to push
        the timer to its own deadline, so under steady load most time-outs
        came up to one deadline late (p99 about twice the deadline).
        """
        deadline = 0.2
        store = store_on(own_redis_server, namespace, deadline=deadline, trip_after=10**6)
        counter = store.bind("p99", (Window(10**6, "1h"),), 0.8)
        process = own_redis_server.process
        assert process is not None

        async def main() -> list[float]:
            assert await counter.acquire_async("k", 1) == 0  # connected
            waits: list[float] = []

            async def one() -> None:
                started = time.perf_counter()
                await counter.acquire_async("k", 1)
                waits.append(time.perf_counter() - started)

            tasks = []
            process.send_signal(signal.SIGSTOP)
            try:
                end = time.monotonic() + 3.0
                while time.monotonic() < end:
                    tasks.append(asyncio.create_task(one()))
                    await asyncio.sleep(0.003)
                await asyncio.gather(*tasks)
            finally:
                process.send_signal(signal.SIGCONT)
            await store.aclose()
            return waits

        waits = sorted(asyncio.run(main()))
        p99 = waits[int(len(waits) * 0.99)]
        assert len(waits) > 100
        assert p99 < deadline * 1.5  # not about twice the deadline


@pytest.mark.integration
class TestLoopsAndProcesses:
    def test_threads_with_their_own_loops_share_one_store_exactly(
        self, redis_server: Any, namespace: str
    ) -> None:
        """Four threads, each with its own loop and pipeline, admit exactly the cap between them."""
        import threading

        store = store_on(redis_server, namespace, deadline=5.0)
        counter = store.bind("threads", (Window(500, "1h"),), 0.8)
        results: list[list[int]] = []

        def run() -> None:
            async def main() -> list[int]:
                codes = await asyncio.gather(*(counter.acquire_async("k", 1) for _ in range(200)))
                await store.aclose()
                return list(codes)

            results.append(asyncio.run(main()))

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        codes = [code for result in results for code in result]
        assert len(codes) == 800
        assert not any(code & 4 for code in codes)  # all decided by Redis
        assert sum(code & 2 == 0 for code in codes) == 500
        assert counter.peek("k")[0] == 0

    def test_a_child_forked_beside_a_live_pipeline_decides_on_its_own_connection(
        self, redis_server: Any, namespace: str
    ) -> None:
        """A child forked while a loop's pipeline is connected decides; the parent's still works."""
        import os
        import threading

        store = store_on(redis_server, namespace, deadline=5.0)
        counter = store.bind("fork", (Window(1000, "1h"),), 0.8)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()

        def decide() -> int:
            future = asyncio.run_coroutine_threadsafe(counter.acquire_async("k", 1), loop)
            return future.result(timeout=30)

        try:
            assert decide() == 0  # the parent's pipeline is connected
            pid = os.fork()
            if pid == 0:  # the child
                code = 1
                try:

                    async def child() -> list[int]:
                        codes = [await counter.acquire_async("k", 1) for _ in range(5)]
                        await store.aclose()
                        return codes

                    code = 0 if asyncio.run(child()) == [0] * 5 else 2
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            assert decide() == 0  # the parent's connection was left alone
            assert counter.peek("k")[0] == 1000 - 7
        finally:
            asyncio.run_coroutine_threadsafe(store.aclose(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()


@pytest.mark.integration
class TestSubWindowRefunds:
    def test_a_late_refund_in_a_later_sub_window_leaves_the_one_it_counted_in(
        self, redis_server: Any, namespace: str
    ) -> None:
        """A cancelled decision refunded 0.3 s later (100 ms sub-windows) leaves no drift behind."""
        store = store_on(redis_server, namespace, deadline=5.0)
        counter = store.bind("sub", (Window(5, "1s", buckets=10),), 0.8)

        async def main() -> None:
            await counter.acquire_async("warm", 1)
            pipeline = store.pipeline()
            for _ in range(3):
                task = asyncio.ensure_future(counter.acquire_async("k", 1))
                await asyncio.sleep(0)  # submitted
                # The server sleeps after counting it: the refund runs in a later sub-window.
                pipeline.submit([pack("DEBUG", "SLEEP", "0.3")], wait=False)
                await asyncio.sleep(0)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                await pipeline.drain()
            await store.aclose()

        asyncio.run(main())
        assert counter.peek("k")[0] == 5
        time.sleep(1.2)  # every sub-window the counts were in has expired
        assert counter.peek("k")[0] == 5  # not 6, 7 or 8: nothing left negative


@pytest.mark.integration
class TestFullServer:
    def test_a_full_server_fails_decisions_without_dropping_the_connection(
        self, own_redis_server: Any, namespace: str
    ) -> None:
        """OOM error replies fail their own decisions (closed: denied); the link and order stay."""
        store = store_on(own_redis_server, namespace, deadline=5.0, trip_after=10**6)
        counter = store.bind("full", (Window(100, "1h"),), 0.8)
        admin = own_redis_server.client()

        async def main() -> tuple[list[int], list[int], bool]:
            assert await counter.acquire_async("k", 1) == 0
            pipeline = store.pipeline()
            link = pipeline.link
            admin.config_set("maxmemory", 1)  # type: ignore[attr-defined]
            try:
                full = list(
                    await asyncio.gather(*(counter.acquire_async("k", 1) for _ in range(50)))
                )
            finally:
                admin.config_set("maxmemory", 0)  # type: ignore[attr-defined]
            after = list(await asyncio.gather(*(counter.acquire_async("k", 1) for _ in range(5))))
            kept = pipeline.link is link
            await store.aclose()
            return full, after, kept

        full, after, kept = asyncio.run(main())
        assert all(code & 6 == 6 for code in full)  # degraded and denied
        assert all(code & 6 == 0 for code in after)  # decided by Redis again
        assert kept
        assert counter.peek("k")[0] == 100 - 6
