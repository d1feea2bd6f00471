"""Cost of the dynamic threshold, the outcome join, the holdout and the decision log.

Run: ``python benchmarks/bench_thresholds.py`` (about a minute). Each case is
printed next to a bare baseline measured in the same run.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import sys
import tempfile
import threading

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from _harness import Suite, machine

import guardrail as gr

BATCH = 10_000


def bench_threshold(suite: Suite) -> None:
    suite.time("empty call", lambda: None, number=100_000)
    lock = threading.Lock()
    state = [0.0]

    def bare_update() -> None:
        with lock:
            state[0] += 0.099 if state[0] <= 0.5 else -0.001

    suite.time("bare float update under a lock", bare_update, number=100_000,
               baseline="empty call")  # fmt: skip
    threshold = gr.DynamicThreshold(target_rate=0.01, initial=gr.Probability(0.9))
    below, above = gr.Probability(0.3), gr.Probability(0.97)
    suite.time("DynamicThreshold.update, one score", functools.partial(threshold.update, below),
               number=100_000, baseline="empty call", note="target <= 0.5 µs")  # fmt: skip
    it = itertools.cycle([below] * 99 + [above])
    update = threshold.update

    def mixed() -> None:
        update(next(it))

    suite.time("... 1 % above, new versions saved", mixed, number=100_000, baseline="empty call",
               note="includes the iterator")  # fmt: skip

    model = gr.ModelRef(name="fraud", version="1")
    prediction = gr.Prediction(below, model)
    fixed = gr.Threshold(0.9, scale=gr.Probability)
    suite.time("Threshold.decide (fixed), one prediction", functools.partial(fixed.decide,
               prediction), number=100_000)  # fmt: skip
    deciding = gr.DynamicThreshold(target_rate=0.01, initial=gr.Probability(0.9))
    suite.time("DynamicThreshold.decide, one prediction", functools.partial(deciding.decide,
               prediction), number=100_000, baseline="Threshold.decide (fixed), one prediction",
               note="compare with the tracker, then update")  # fmt: skip

    rng = np.random.default_rng(0)
    batch_values = rng.uniform(0.0, 1.0, BATCH) ** 40  # ~1 % above 0.9
    raw = batch_values.copy()
    raw.flags.writeable = False
    bare_cut = 0.9
    batch = gr.Probability(raw)
    per = 1.0 / BATCH

    def bare_batch() -> None:
        np.count_nonzero(raw >= bare_cut)

    r = suite.time("bare numpy compare + count, 10k batch", bare_batch, number=300)
    suite.add("  per element", r.seconds * per)
    r = suite.time("DynamicThreshold.update, 10k batch", lambda: threshold.update(batch),
                   number=300, baseline="bare numpy compare + count, 10k batch")  # fmt: skip
    suite.add("DynamicThreshold.update per element", r.seconds * per, baseline="  per element",
              note="target <= 50 ns")  # fmt: skip
    clamped = gr.DynamicThreshold(
        target_rate=0.01, initial=gr.Probability(0.9), upper=gr.Probability(0.901)
    )
    hot = gr.Probability(np.full(BATCH, 0.95))
    r = suite.time("... at the upper clamp (10k batch)", lambda: clamped.update(hot),
                   number=300, baseline="bare numpy compare + count, 10k batch")  # fmt: skip
    suite.add("... at the upper clamp, per element", r.seconds * per, baseline="  per element")


def bench_outcomes(suite: Suite) -> None:
    model = gr.ModelRef(name="fraud", version="1")
    n = 100_000
    predictions = [gr.Prediction(gr.Probability(0.3), model) for _ in range(n)]
    ids = [p.id for p in predictions]
    bare: dict[str, tuple[float, float]] = {}
    it = itertools.cycle(range(n))

    def bare_join() -> None:
        i = next(it)
        bare[ids[i]] = (0.3, 0.0)
        bare.pop(ids[i])

    suite.time("bare dict insert + pop", bare_join, number=n // 10, repeat=10)
    monitor = gr.OutcomeMonitor(capacity=n, slice=None)
    it2 = itertools.cycle(range(n))

    def join() -> None:
        i = next(it2)
        monitor.record(predictions[i])
        monitor.record_outcome(ids[i], 0)

    suite.time("OutcomeMonitor.record + record_outcome", join, number=n // 10, repeat=10,
               baseline="bare dict insert + pop")  # fmt: skip


def bench_holdout(suite: Suite) -> None:
    key = b"2026-11"
    row = {"user_id": 123456789}

    def bare_hash() -> None:
        hashlib.blake2b(str(row["user_id"]).encode(), digest_size=8, key=key).digest()

    suite.time("bare blake2b of the unit id", bare_hash, number=100_000)
    holdout = gr.Holdout(fraction=0.05, unit=lambda r: r["user_id"], salt="2026-11")
    suite.time("Holdout.arm, one row", lambda: holdout.arm(row), number=100_000,
               baseline="bare blake2b of the unit id")  # fmt: skip
    rows = [{"user_id": i} for i in range(BATCH)]
    r = suite.time("Holdout.assign, 10k rows", lambda: holdout.assign(rows), number=20,
                   repeat=10)  # fmt: skip
    suite.add("Holdout.assign per row", r.seconds / BATCH, baseline="bare blake2b of the unit id")


def bench_log(suite: Suite) -> None:
    model = gr.ModelRef(name="fraud", version="1")
    record = gr.holdout.DecisionRecord("abc-1", "0123456789abcdef", 1.0, "fraud", "1", 0.3,
                               "probability", 0.9, 3, False, 0.95, False, (), "model",
                               "f" * 64)  # fmt: skip
    plain = record.to_dict()
    suite.time("bare json.dumps of a record dict", lambda: json.dumps(plain), number=20_000)
    with tempfile.TemporaryDirectory() as tmp:
        sink = gr.holdout.JsonLinesSink(os.path.join(tmp, "d.jsonl"))
        log = gr.DecisionLog(sink)
        decision = gr.Threshold(0.9, scale=gr.Probability).decide(
            gr.Prediction(gr.Probability(0.3), model)
        )
        suite.time("DecisionLog.write to a JsonLinesSink", lambda: log.write(decision),
                   number=20_000, baseline="bare json.dumps of a record dict")  # fmt: skip
        sink.close()


def main() -> None:
    """Run every case and print the table."""
    gr.configure(hooks=[])
    suite = Suite("Thresholds, outcomes, holdout")
    bench_threshold(suite)
    bench_outcomes(suite)
    bench_holdout(suite)
    bench_log(suite)
    print(suite.table())
    print()
    print(machine())


if __name__ == "__main__":
    main()
