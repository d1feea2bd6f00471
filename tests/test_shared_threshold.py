"""A dynamic threshold shared by several replicas through a real redis-server."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import guardrail as gr
from guardrail.errors import ConfigError, ScaleError
from guardrail.instrumentation import ThresholdChanged, ThresholdClampHit
from guardrail.testing import capture_events
from guardrail.thresholds import SharedThreshold

#: Real engines (Spark, Dask, Redis, Prometheus): the integration tier.
pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _quiet() -> None:
    gr.configure(hooks=[])
    return


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def replica(server: Any, namespace: str, clock: Clock, **kwargs: Any) -> SharedThreshold[Any]:
    """One replica's view of the shared threshold (its own store and client)."""
    kwargs.setdefault("target_rate", 0.1)
    kwargs.setdefault("initial", gr.Probability(0.5))
    kwargs.setdefault("dead_band", 0.0)
    store = gr.RedisStore(server.client(), namespace=namespace, deadline=0.5)
    return SharedThreshold(store=store, clock=clock, max_staleness=1.0, **kwargs)


class TestSharedThreshold:
    def test_starts_at_initial(self, redis_server: Any, namespace: str) -> None:
        """A new tracker holds the initial value, exactly, under version 1."""
        t = replica(redis_server, namespace, Clock())
        current = t.current()
        assert (current.value, current.version, current.origin) == (0.5, 1, "dynamic")
        assert "version=1" in repr(t)

    def test_one_batch_moves_like_a_dynamic_threshold(
        self, redis_server: Any, namespace: str
    ) -> None:
        """A replica's batch of counts moves the tracker as DynamicThreshold's batch update does."""
        clock = Clock()
        shared = replica(redis_server, namespace, clock, step=0.1)
        local = gr.DynamicThreshold(
            target_rate=0.1, initial=gr.Probability(0.5), step=0.1, dead_band=0.0
        )
        scores = gr.Probability(np.array([0.9] * 30 + [0.1] * 5))
        shared.current()
        shared.update(scores)
        assert shared.pending == 35
        clock.now += 1.0
        current = shared.current()
        local.update(scores)
        assert shared.pending == 0
        assert current.value == pytest.approx(local.current().value, rel=1e-12)
        assert current.version == 2

    def test_replicas_share_one_tracker(self, redis_server: Any, namespace: str) -> None:
        """Counts from two replicas add up in one tracker; each reads it within its staleness."""
        clock = Clock()
        a = replica(redis_server, namespace, clock, dead_band=0.5)
        b = replica(redis_server, namespace, clock, dead_band=0.5)
        assert a.current().version == b.current().version == 1
        for t in (a, b):
            t.update(gr.Probability(np.full(4, 0.9)))  # 4 x 0.09 up from each
        with capture_events() as events:
            clock.now += 1.0
            assert a.current().version == 1  # a alone moved it 0.36: inside the dead band
            assert b.current().version == 2  # b's counts took it past 0.5
        assert [type(e) for e in events] == [ThresholdChanged]
        expected = 1.0 / (1.0 + math.exp(-8 * 0.09))
        assert b.current().value == pytest.approx(expected, rel=1e-12)
        assert a.current().version == 1  # not stale yet: no Redis call
        clock.now += 1.0
        assert a.current() == b.current()

    @pytest.mark.parametrize("kind", ["rising", "falling", "step"])
    def test_decisions_follow_the_tracker_not_the_saved_value(
        self, redis_server: Any, namespace: str, kind: str
    ) -> None:
        """Two replicas decide with the fleet's tracker: the dead band spaces versions only."""
        clock = Clock()
        a = replica(redis_server, namespace, clock, initial=gr.LogOdds(-2.0), dead_band=1.0)
        b = replica(redis_server, namespace, clock, initial=gr.LogOdds(-2.0), dead_band=1.0)
        model = gr.ModelRef(name="m", version="1")
        rng = np.random.default_rng(3)
        n = 4_000
        mean = {
            "rising": np.linspace(-2.0, 0.0, n),
            "falling": np.linspace(0.0, -2.0, n),
            "step": np.where(np.arange(n) < n // 2, -2.0, -1.0),
        }[kind]
        xs = mean + 0.03 * rng.standard_normal(n)
        positives = 0
        for i, x in enumerate(xs.tolist()):
            if i % 10 == 0:
                clock.now += 1.0  # each replica syncs every 20 scores
            d = (a if i % 2 else b).decide(gr.Prediction(gr.LogOdds(x), model))
            assert d.threshold.value == (a if i % 2 else b).tracker.value
            positives += bool(d.above)
        clock.now += 1.0
        a.sync(), b.sync()
        versions = b.current().version
        assert versions < 40  # a version per dead band crossed, not per score
        moved = b.tracker.value + 2.0
        # The fleet's identity: positives - r N = (t_N - t_0) / step, the counts all sent.
        assert positives - 0.1 * n == pytest.approx(moved / 0.1, abs=1e-6)
        assert abs(positives / n - 0.1) <= (2.2 + 0.1) / (0.1 * n)

    def test_clamp_hit_is_emitted_once_for_the_fleet(
        self, redis_server: Any, namespace: str
    ) -> None:
        """The replica whose counts reach the clamp emits the fleet's one clamp event."""
        clock = Clock()
        kwargs: dict[str, Any] = {"upper": gr.Probability(0.6), "step": 0.5}
        a = replica(redis_server, namespace, clock, **kwargs)
        b = replica(redis_server, namespace, clock, **kwargs)
        with capture_events() as events:
            a.update(gr.Probability(np.full(10, 0.99)))
            b.update(gr.Probability(np.full(10, 0.99)))
            clock.now += 1.0
            a.current()
            b.current()
        hits = [e for e in events if isinstance(e, ThresholdClampHit)]
        assert [(e.bound, e.value, e.hits) for e in hits] == [("upper", 0.6, 1)]
        assert a.current().value == 0.6
        assert a.clamp_hits == b.clamp_hits == 1

    def test_pause_acts_fleet_wide(self, redis_server: Any, namespace: str) -> None:
        """A pause by one replica stops the tracker for all; scores still count."""
        clock = Clock()
        a = replica(redis_server, namespace, clock)
        b = replica(redis_server, namespace, clock)
        a.pause("incident")
        b.update(gr.Probability(np.full(50, 0.99)))
        clock.now += 1.0
        assert b.current().version == 1
        assert b.paused
        assert b.seen == 50
        a.resume()
        b.update(gr.Probability(np.full(50, 0.99)))
        clock.now += 1.0
        assert b.current().version == 2
        assert not b.paused

    def test_warmup_counts_fleet_wide(self, redis_server: Any, namespace: str) -> None:
        """The tracker stays until the fleet has seen warmup scores."""
        clock = Clock()
        a = replica(redis_server, namespace, clock, warmup=30)
        b = replica(redis_server, namespace, clock, warmup=30)
        a.update(gr.Probability(np.full(20, 0.99)))
        clock.now += 1.0
        assert a.current().version == 1
        b.update(gr.Probability(np.full(20, 0.99)))
        clock.now += 1.0
        assert b.current().version == 2  # 10 of b's 20 scores moved it

    def test_unreachable_redis_keeps_the_last_value(self, redis_server: Any) -> None:
        """With Redis gone, decisions use the last value and are degraded; it recovers by itself."""
        import redis

        from .conftest import RedisServer

        server = RedisServer(redis_server.executable)
        server.start()
        try:
            clock = Clock()
            store = gr.RedisStore(
                redis.Redis(host="127.0.0.1", port=server.port), namespace="x", deadline=0.2
            )
            t = SharedThreshold(
                target_rate=0.1,
                initial=gr.Probability(0.5),
                store=store,
                dead_band=0.0,
                clock=clock,
                max_staleness=1.0,
            )
            model = gr.ModelRef(name="m", version="1")
            assert t.current().version == 1
            server.stop()
            clock.now += 1.0
            decision = t.decide(gr.Prediction(gr.Probability(0.9), model=model))
            assert decision.act
            assert decision.threshold.version == 1
            assert (t.degraded, t.degraded_decisions, t.errors) == (True, 1, 1)
            assert t.pending == 1  # the score waits for Redis
            server.start()
            clock.now += 1.0
            assert t.current().version == 2  # the kept score moved the tracker
            assert not t.degraded
            assert t.seen == 1
        finally:
            server.stop()

    def test_guard_marks_degraded_calls(self, redis_server: Any) -> None:
        """In a guard, a decision made without Redis is counted degraded and still returns."""
        import redis

        from .conftest import free_port

        store = gr.RedisStore(
            redis.Redis(host="127.0.0.1", port=free_port()),
            namespace="x",
            deadline=0.05,
        )
        t = SharedThreshold(target_rate=0.1, initial=gr.Probability(0.5), store=store)

        @gr.guard(model=gr.ModelRef(name="m", version="1"), returns=gr.Probability, threshold=t)
        def predict(x: float) -> float:
            return x

        decision = predict(0.7)
        assert decision.act
        assert decision.threshold.version == 1
        assert (t.degraded, t.degraded_decisions) == (True, 1)

    def test_bad_configuration(self, redis_server: Any) -> None:
        """Bad rates, scales, staleness and stores are refused when built."""
        store = gr.RedisStore(redis_server.client(), namespace="cfg")
        with pytest.raises(ConfigError):
            SharedThreshold(target_rate=1.5, initial=gr.Probability(0.5), store=store)
        with pytest.raises(ConfigError):
            SharedThreshold(target_rate=0.1, initial=gr.Score(1.0), store=store)
        with pytest.raises(ConfigError):
            SharedThreshold(
                target_rate=0.1, initial=gr.Probability(0.5), store=store, max_staleness=-1
            )
        with pytest.raises(ConfigError, match="RedisStore"):
            SharedThreshold(target_rate=0.1, initial=gr.Probability(0.5), store=object())
        with pytest.raises(ScaleError):
            SharedThreshold(
                target_rate=0.1,
                initial=gr.Probability(0.5),
                store=store,
                upper=gr.LogOdds(1.0),  # type: ignore[arg-type]
            )
        t = SharedThreshold(target_rate=0.1, initial=gr.Probability(0.5), store=store)
        with pytest.raises(ScaleError):
            t.update(gr.LogOdds(1.0))  # type: ignore[arg-type]


# One replica process: a drifting score stream, decided against the shared threshold.
REPLICA = """
import json, sys, time
import numpy as np, redis, guardrail as gr
from guardrail.thresholds import SharedThreshold

gr.configure(hooks=[])
port, namespace, seed, rows = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = gr.RedisStore(redis.Redis(host="127.0.0.1", port=port), namespace=namespace, deadline=1.0)
t = SharedThreshold(target_rate=0.05, initial=gr.Probability(0.5), store=store, step=0.05,
                    max_staleness=0.05)
model = gr.ModelRef(name="m", version="1")
rng = np.random.default_rng(seed)
drift = np.linspace(-3.0, -1.0, rows)  # the scores rise over the run
scores = 1.0 / (1.0 + np.exp(-(drift + rng.normal(size=rows))))
t.current()
print("ready", flush=True)
sys.stdin.readline()
used, positive = [], 0
for score in scores:
    d = t.decide(gr.Prediction(gr.Probability(float(score)), model=model))
    positive += bool(d.act)
    used.append((time.time(), d.threshold.version))
    time.sleep(0.0002)
t.sync()
print(json.dumps({"positive": positive, "used": used, "errors": t.errors}), flush=True)
sys.stdin.readline()  # every replica has sent its last counts
t.sync()
print(t.current().version, flush=True)
"""


class TestFleet:
    def test_four_processes_hold_one_version_and_the_target(
        self, redis_server: Any, namespace: str
    ) -> None:
        """4 replicas on a drifting stream hold the target rate and one version within staleness."""
        rows = 3_000
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    REPLICA,
                    str(redis_server.port),
                    namespace,
                    str(i),
                    str(rows),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for i in range(4)
        ]
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            assert p.stdout is not None
            results.append(json.loads(p.stdout.readline()))
        finals = set()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("final\n")
            p.stdin.flush()
            finals.add(int(p.communicate(timeout=60)[0]))
        assert all(p.returncode == 0 for p in procs)
        assert all(r["errors"] == 0 for r in results)

        # The same stream through one DynamicThreshold, the single-process figure.
        single = gr.DynamicThreshold(target_rate=0.05, initial=gr.Probability(0.5), step=0.05)
        model = gr.ModelRef(name="m", version="1")
        streams = []
        for seed in range(4):
            rng = np.random.default_rng(seed)
            drift = np.linspace(-3.0, -1.0, rows)
            streams.append(1.0 / (1.0 + np.exp(-(drift + rng.normal(size=rows)))))
        single_positive = sum(
            bool(single.decide(gr.Prediction(gr.Probability(float(s)), model=model)).act)
            for s in np.column_stack(streams).ravel()
        )
        fleet_rate = sum(r["positive"] for r in results) / (4 * rows)
        single_rate = single_positive / (4 * rows)
        assert abs(fleet_rate - 0.05) <= abs(single_rate - 0.05) + 0.01, (fleet_rate, single_rate)

        # Every replica ends on the fleet's version ...
        assert len(finals) == 1
        assert finals.pop() > 5  # the drift moved it many times
        # ... and never decided with a version older than one another replica
        # was already using more than the staleness bound earlier (generous
        # slack for a busy machine: the bound is 0.05 s).
        first_use: dict[int, float] = {}
        for r in results:
            for when, version in r["used"]:
                first_use[version] = min(first_use.get(version, math.inf), when)
        slack = 0.05 + 2.0
        worst = 0
        for r in results:
            for when, version in r["used"]:
                newer = [v for v, t in first_use.items() if v > version and t < when - slack]
                worst = max(worst, len(newer))
        assert worst == 0


class TestHowTo:
    def test_page_runs_against_a_real_redis(
        self, redis_server: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The how-to's python block runs as written against the test redis-server."""
        from .test_doc_examples import ROOT, blocks

        monkeypatch.setenv("REDIS_PORT", str(redis_server.port))
        monkeypatch.chdir(tmp_path)
        (code,) = blocks(ROOT / "docs/how-to/redis-thresholds.md")
        namespace: dict[str, object] = {"__name__": "__doc_example__"}
        exec(compile(code, "redis-thresholds.md", "exec"), namespace)
        assert namespace["threshold"].current().version > 1  # type: ignore[attr-defined]
