"""Forking a threaded process: a child inherits no held lock and no buffered record."""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import guardrail as gr
from guardrail.limits import RedisStore
from guardrail.skew import FleetExporter
from guardrail.thresholds import SharedThreshold

MODEL = gr.ModelRef(name="fraud", version="1")
RNG = np.random.default_rng(3)
REF = gr.Profile.from_columns(
    {"amount": RNG.normal(100.0, 15.0, 2_000), "user": RNG.integers(0, 500, 2_000).astype(float)}
)
CHILDREN = 20
CALLS = 100
#: A child that has not finished by then is stuck (it needs well under 1 s when idle).
HUNG_AFTER = 30.0


def wait_or_kill(pid: int, bound: float) -> int | None:
    """The child's exit status, or None if it was still running after *bound* seconds."""
    end = time.monotonic() + bound
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def guarded(
    path: Path, redis_client: Any, *, fleet: bool = False
) -> tuple[Any, gr.holdout.JsonLinesSink]:
    """A guard with every mechanism, a memory and a Redis limit, logging to *path*.

    With *fleet*: the fleet's mechanisms instead, a ``SharedThreshold`` in
    Redis and a ``FleetExporter`` on an OpenTelemetry meter provider.
    """
    sink = gr.holdout.JsonLinesSink(path, flush_every=7)
    holdout = gr.Holdout(fraction=0.2, unit=lambda row: int(row["user"]), salt="s")
    limits = [
        gr.ActionLimit("memory", max_actions=10**9, per="1h", key=lambda r: str(int(r["user"]))),
        gr.ActionLimit(
            "shared",
            max_actions=10**9,
            per="1h",
            store=RedisStore(redis_client, namespace="forks", deadline=1.0),
        ),
    ]

    threshold: Any = gr.DynamicThreshold(target_rate=0.3, initial=gr.Probability(0.5))
    inputs: Any = gr.SkewMonitor(reference=REF, sample=1.0, every=5)
    if fleet:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        threshold = SharedThreshold(
            target_rate=0.3,
            initial=gr.Probability(0.5),
            store=RedisStore(redis_client, namespace="forks-fleet", deadline=1.0),
            name="forked",
            max_staleness=0.001,
        )
        provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        inputs = FleetExporter(REF, model=MODEL, meter_provider=provider)

    @gr.guard(
        model=MODEL,
        returns=gr.Probability,
        threshold=threshold,
        inputs=inputs,
        holdout=holdout,
        limits=limits,
        outcomes=[gr.OutcomeMonitor(), gr.DecisionLog(sink, holdout=holdout)],
        name="forked",
    )
    def predict(row: dict[str, float]) -> float:
        return 0.9 if row["amount"] > 100 else 0.1

    return predict, sink


class TestFork:
    @pytest.mark.parametrize("fleet", [False, True], ids=["process", "fleet"])
    def test_children_forked_mid_call_neither_hang_nor_repeat_records(
        self, tmp_path: Path, redis_server: Any, fleet: bool
    ) -> None:
        """Children forked amid 8 threads' guarded calls finish theirs; records are written once."""
        gr.configure(hooks=[])
        path = tmp_path / "decisions.jsonl"
        predict, sink = guarded(path, redis_server.client(), fleet=fleet)
        stop = threading.Event()
        rows = [{"amount": float(a), "user": float(i % 50)} for i, a in enumerate(range(60, 140))]

        def busy() -> None:
            i = 0
            while not stop.is_set():
                predict(rows[i % len(rows)])
                i += 1

        threads = [threading.Thread(target=busy) for _ in range(8)]
        for t in threads:
            t.start()
        outcomes: list[int | None] = []
        try:
            for _ in range(CHILDREN):
                time.sleep(0.01)
                pid = os.fork()
                if pid == 0:  # pragma: no cover - runs in the child
                    code = 1
                    # A hung child prints where each thread is before it is killed.
                    faulthandler.dump_traceback_later(HUNG_AFTER / 2, exit=True)
                    try:
                        for i in range(CALLS):
                            predict(rows[i % len(rows)])
                        sink.flush()
                        code = 0
                    finally:
                        os._exit(code)
                outcomes.append(wait_or_kill(pid, HUNG_AFTER))
        finally:
            stop.set()
            for t in threads:
                t.join()
        sink.close()
        assert outcomes == [0] * CHILDREN
        lines = path.read_text().splitlines()
        ids = [json.loads(line)["decision_id"] for line in lines]
        assert len(ids) == len(set(ids))
        assert len(ids) >= CHILDREN * CALLS

    def test_child_drops_the_buffer_it_inherited(self, tmp_path: Path) -> None:
        """A child that closes its sink writes none of the records its parent had buffered."""
        gr.configure(hooks=[])
        path = tmp_path / "d.jsonl"
        sink = gr.holdout.JsonLinesSink(path, flush_every=1000)
        log = gr.DecisionLog(sink)
        for _ in range(50):
            log.write(gr.Prediction(gr.Probability(0.5), MODEL))
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                sink.close()
            finally:
                os._exit(0)
        assert wait_or_kill(pid, HUNG_AFTER) == 0
        sink.close()
        ids = [json.loads(line)["decision_id"] for line in path.read_text().splitlines()]
        assert len(ids) == len(set(ids)) == 50


@pytest.fixture(autouse=True)
def _no_alarm() -> Any:
    yield
    signal.alarm(0)


class TestProcessWideLocks:
    def test_a_child_builds_guards_though_a_parent_thread_held_their_locks(self) -> None:
        """Forked while another thread holds the registry's and the owners' locks, a child
        still builds and calls a guard."""
        import guardrail._call
        import guardrail._guard

        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with guardrail._guard._REGISTRY_LOCK, guardrail._call._OWNERS_LOCK:
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        assert held.wait(10)
        pid = os.fork()
        if pid == 0:  # the child: exit 0 only if a guard could be built and called
            code = 1
            try:
                limit = gr.ActionLimit("child", max_actions=1, per="1h")
                predict = gr.guard(
                    model=gr.ModelRef(name="m", version="1"),
                    returns=gr.Probability,
                    threshold=gr.Threshold(0.5, scale=gr.Probability),
                    limits=[limit],
                )(lambda row: 0.9)
                code = 0 if predict({}).act is True else 2
            finally:
                os._exit(code)
        release.set()
        holder.join()
        deadline = time.monotonic() + 30  # generous: a hang is what fails here
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the child hung on a lock its parent's thread held")
            time.sleep(0.05)
        assert os.waitstatus_to_exitcode(status) == 0
