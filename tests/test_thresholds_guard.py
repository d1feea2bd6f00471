"""Dynamic threshold, holdout, outcome monitor and decision log inside gr.guard(...)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import guardrail as gr
from guardrail.testing import capture_events

MODEL = gr.ModelRef(name="fraud", version="3.1.0")


class ListSink:
    """A sink that keeps records in a list."""

    def __init__(self) -> None:
        self.records: list[gr.holdout.DecisionRecord] = []

    def write(self, record: gr.holdout.DecisionRecord) -> None:
        self.records.append(record)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _quiet() -> None:
    gr.configure(hooks=[])


def parts() -> tuple[Any, gr.Holdout, gr.OutcomeMonitor, ListSink]:
    threshold = gr.DynamicThreshold(
        target_rate=0.1, initial=gr.Probability(0.5), model=MODEL, dead_band=0.0
    )
    holdout = gr.Holdout(fraction=0.3, unit=lambda row: row["user_id"], salt="s")
    sink = ListSink()
    log = gr.DecisionLog(sink, holdout=holdout, threshold=threshold)
    monitor = gr.OutcomeMonitor(log=log, slice=lambda row: row["country"])
    return threshold, holdout, monitor, sink


class TestThroughTheGuard:
    def test_one_row_at_a_time(self) -> None:
        """Each decision records the threshold version, arm and propensity; labels join."""
        threshold, holdout, monitor, sink = parts()

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=threshold, holdout=holdout,
                  outcomes=monitor)  # fmt: skip
        def predict(row: dict[str, Any]) -> float:
            return float(row["score"])

        decisions = [
            predict({"user_id": i, "country": "fr", "score": 0.9 if i % 2 else 0.1})
            for i in range(50)
        ]
        versions = [d.threshold.version for d in decisions]
        assert versions == sorted(versions)
        assert versions[-1] > 1
        assert all(d.threshold.origin == "dynamic" for d in decisions)
        for d, i in zip(decisions, range(50), strict=True):
            expected = holdout.arm({"user_id": i})
            assert d.arm == expected
            if expected == "holdout":
                assert not d.act
            if d.above and expected == "holdout":
                assert "holdout" in d.reasons
                assert d.propensity == pytest.approx(0.3)
        assert len(sink.records) == 50
        assert [r.threshold_version for r in sink.records] == versions
        assert [r.action for r in sink.records] == [bool(d.act) for d in decisions]
        for d in decisions:
            assert monitor.record_outcome(d.prediction.id, 1)
        assert monitor.report().outcomes == 50

    def test_a_batch(self) -> None:
        """A batch gets arrays of decisions, arms and propensities, one record per row."""
        threshold, holdout, monitor, sink = parts()

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=threshold, holdout=holdout,
                  outcomes=monitor)  # fmt: skip
        def predict(rows: list[dict[str, Any]]) -> list[float]:
            return [float(r["score"]) for r in rows]

        rows = [{"user_id": i, "country": "de", "score": 0.9} for i in range(40)]
        decision = predict(rows)
        held = np.array([holdout.arm(r) == "holdout" for r in rows])
        assert isinstance(decision.act, np.ndarray)
        assert decision.act.tolist() == (~held).tolist()
        assert isinstance(decision.arm, np.ndarray)
        assert isinstance(decision.propensity, np.ndarray)
        assert len(sink.records) == 40
        assert monitor.record_outcome(f"{decision.prediction.id}:3", 0)
        assert threshold.seen == 40

    def test_guard_fingerprint_ignores_threshold_state(self) -> None:
        """The guard's configuration describes settings, so it does not drift with scores."""
        threshold, holdout, monitor, _ = parts()
        config = gr.GuardConfig(model=MODEL, returns=gr.Probability, threshold=threshold,
                                holdout=holdout, outcomes=monitor)  # fmt: skip
        before = config.fingerprint
        for _ in range(20):
            threshold.update(gr.Probability(0.99))
        assert threshold.current().version > 1
        assert config.fingerprint == before

    def test_monitor_failure_does_not_break_the_call(self) -> None:
        """An outcome monitor that fails is reported; the guard returns the decision."""

        class Broken(gr.OutcomeMonitor):
            def record_call(self, call: gr.mechanisms.Call) -> None:
                raise RuntimeError("disk full")

        threshold = gr.DynamicThreshold(target_rate=0.1, initial=gr.Probability(0.5))

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=threshold, outcomes=Broken())
        def predict(row: dict[str, float]) -> float:
            return 0.9

        with capture_events() as events:
            decision = predict({"x": 1.0})
        assert decision.act is True
        assert any(isinstance(e, gr.instrumentation.MachineryError) for e in events)
