"""OutcomeMonitor: late labels joined by id, prediction bias, calibration, precision."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import pytest

import guardrail as gr
from guardrail.testing import capture_events, make_call

MODEL = gr.ModelRef(name="fraud", version="3.1.0")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def prediction(p: float) -> gr.Prediction[Any]:
    return gr.Prediction(gr.Probability(p), MODEL)


@pytest.fixture(autouse=True)
def _quiet() -> None:
    gr.configure(hooks=[])


class TestJoin:
    def test_bias_is_mean_prediction_minus_mean_label(self) -> None:
        """Joined labels give bias = mean prediction - mean label."""
        monitor = gr.OutcomeMonitor()
        preds = [prediction(p) for p in (0.2, 0.4, 0.9)]
        for p in preds:
            monitor.record(p)
        for p, y in zip(preds, (0, 1, True), strict=True):
            assert monitor.record_outcome(p.id, y)
        report = monitor.report()
        assert report.outcomes == 3
        assert report.pending == 0
        assert report.bias == pytest.approx(0.5 - 2 / 3)

    def test_log_odds_are_converted(self) -> None:
        """Log-odds predictions count as their probability."""
        monitor = gr.OutcomeMonitor()
        p = gr.Prediction(gr.LogOdds(0.0), MODEL)
        monitor.record(p)
        monitor.record_outcome(p.id, 1)
        assert monitor.report().mean_prediction == pytest.approx(0.5)

    def test_score_is_refused(self) -> None:
        """A Score has no probability: recording one is a ScaleError."""
        with pytest.raises(gr.errors.ScaleError):
            gr.OutcomeMonitor().record(gr.Prediction(gr.Score(3.0), MODEL))

    def test_batch_rows_join_by_row_id(self) -> None:
        """Row i of a batch prediction is joined as '<id>:<i>'."""
        monitor = gr.OutcomeMonitor()
        p = gr.Prediction(gr.Probability(np.array([0.1, 0.8])), MODEL)
        monitor.record(p, np.array([False, True]))
        assert monitor.record_outcome(f"{p.id}:1", 1)
        assert monitor.record_outcome(f"{p.id}:0", 0)
        report = monitor.report()
        assert report.outcomes == 2
        assert report.precision == 1.0

    def test_by_slice(self) -> None:
        """Bias is reported per slice of the input."""
        gr.instrumentation.configure(redact=str)  # slice keys as they are
        monitor = gr.OutcomeMonitor(slice=lambda row: row["country"])
        for country, p, y in (("fr", 0.9, 0), ("fr", 0.7, 0), ("de", 0.3, 1)):
            pred = prediction(p)
            monitor.record(pred, inputs={"country": country})
            monitor.record_outcome(pred.id, y)
        by = monitor.report().bias_by_slice
        assert by["fr"] == pytest.approx(0.8)
        assert by["de"] == pytest.approx(-0.7)

    def test_precision_among_positive_decisions(self) -> None:
        """Precision is the mean label where the decision was to act."""
        monitor = gr.OutcomeMonitor()
        t = gr.Threshold(0.5, scale=gr.Probability)
        for p, y in ((0.9, 1), (0.8, 0), (0.7, 1), (0.1, 1)):
            pred = prediction(p)
            monitor.record(pred, t.decide(pred))
            monitor.record_outcome(pred.id, y)
        assert monitor.report().precision == pytest.approx(2 / 3)

    def test_capacity_bounds_the_statistics(self) -> None:
        """Only the last *capacity* labelled predictions are counted."""
        monitor = gr.OutcomeMonitor(capacity=2)
        for p, y in ((0.9, 0), (0.5, 1), (0.5, 1)):
            pred = prediction(p)
            monitor.record(pred)
            monitor.record_outcome(pred.id, y)
        report = monitor.report()
        assert report.outcomes == 2
        assert report.bias == pytest.approx(-0.5)


class TestLosses:
    def test_full_capacity_evicts_oldest_and_counts(self) -> None:
        """Beyond *capacity* waiting predictions the oldest is dropped, counted and reported."""
        monitor = gr.OutcomeMonitor(capacity=3)
        preds = [prediction(0.5) for _ in range(5)]
        with capture_events() as events:
            for p in preds:
                monitor.record(p)
        assert monitor.pending == 3
        assert monitor.report().evicted == 2
        assert not monitor.record_outcome(preds[0].id, 1)
        assert monitor.record_outcome(preds[4].id, 1)
        lost = [
            (e.reason, e.count) for e in events if isinstance(e, gr.instrumentation.OutcomesLost)
        ]
        assert lost == [("evicted", 1), ("evicted", 2)]

    def test_ttl_reads_a_duration(self) -> None:
        """ttl takes seconds or a duration string, like every length of time."""
        assert gr.OutcomeMonitor(ttl="1h").ttl == 3600.0
        assert gr.OutcomeMonitor().ttl == 7 * 86400.0

    def test_ttl_expires_and_counts(self) -> None:
        """A prediction older than the ttl is dropped and its late label is unmatched."""
        clock = Clock()
        monitor = gr.OutcomeMonitor(ttl=60, clock=clock)
        old = prediction(0.5)
        monitor.record(old)
        clock.now += 61
        fresh = prediction(0.5)
        monitor.record(fresh)
        assert monitor.pending == 1
        assert not monitor.record_outcome(old.id, 1)
        report = monitor.report()
        assert (report.expired, report.unmatched) == (1, 1)
        assert monitor.record_outcome(fresh.id, 0)

    @pytest.mark.parametrize("value", [gr.Probability(0.5), gr.LogOdds(0.0)])
    def test_recording_an_id_again_makes_it_the_newest(self, value: Any) -> None:
        """A prediction recorded twice waits from its second recording; older ones still expire."""
        clock = Clock()
        monitor = gr.OutcomeMonitor(ttl=60, clock=clock)
        again, older = gr.Prediction(value, MODEL), gr.Prediction(value, MODEL)
        monitor.record(again)
        clock.now += 30
        monitor.record(older)
        clock.now += 20
        monitor.record(again)
        clock.now += 45  # older is 65 s old, again 45 s
        monitor.record(gr.Prediction(value, MODEL))
        assert (monitor.pending, monitor.report().expired) == (2, 1)
        assert not monitor.record_outcome(older.id, 1)
        assert monitor.record_outcome(again.id, 1)

    def test_unknown_id_is_counted_not_raised(self) -> None:
        """A label for an id never seen returns False and is counted."""
        monitor = gr.OutcomeMonitor()
        with capture_events() as events:
            assert not monitor.record_outcome("nope", 1)
            assert not monitor.record_outcome("nope", 1)
            assert not monitor.record_outcome("nope", 1)
        assert monitor.report().unmatched == 3
        counts = [e.count for e in events if isinstance(e, gr.instrumentation.OutcomesLost)]
        assert counts == [1, 2]  # reported at doubling counts

    @pytest.mark.parametrize("label", [2, -1, 0.5, 1.0, "1", None, math.nan])
    def test_bad_label_is_a_label_error(self, label: object) -> None:
        """A label that is not 0, 1, True or False is a LabelError."""
        monitor = gr.OutcomeMonitor()
        p = prediction(0.5)
        monitor.record(p)
        with pytest.raises(gr.errors.LabelError):
            monitor.record_outcome(p.id, label)  # type: ignore[arg-type]
        assert monitor.invalid_labels == 1
        assert monitor.pending == 1  # the prediction still waits for a good label


class TestAlarms:
    def feed(self, monitor: gr.OutcomeMonitor, n: int, p: float, rate: float) -> None:
        rng = np.random.default_rng(0)
        for y in (rng.random(n) < rate).tolist():
            pred = prediction(p)
            monitor.record(pred, inputs={"country": "fr"})
            monitor.record_outcome(pred.id, y)

    def test_bias_out_of_range_alarms_pauses_and_asks_to_retrain(self) -> None:
        """Biased predictions fire one alarm, pause the thresholds and call the hook."""
        threshold = gr.DynamicThreshold(target_rate=0.01, initial=gr.Probability(0.9))
        asked: list[gr.instrumentation.Event] = []
        monitor = gr.OutcomeMonitor(
            min_outcomes=100, bias_bounds=(-0.05, 0.05), ece_bound=None,
            thresholds=[threshold], on_retrain=asked.append,
        )  # fmt: skip
        with capture_events() as events:
            self.feed(monitor, 300, p=0.8, rate=0.5)
        alarms = [e for e in events if isinstance(e, gr.instrumentation.PredictionBiasOutOfRange)]
        assert len(alarms) == 1  # once on crossing, not on every label
        assert alarms[0].slice is None
        assert alarms[0].bias == pytest.approx(0.3, abs=0.1)
        assert threshold.paused
        assert asked == alarms

    def test_bias_by_slice_alarms(self) -> None:
        """A slice out of range fires its own alarm."""
        gr.instrumentation.configure(redact=str)  # slice keys as they are
        monitor = gr.OutcomeMonitor(slice=lambda row: row["country"], min_outcomes=50,
                                    ece_bound=None)  # fmt: skip
        with capture_events() as events:
            self.feed(monitor, 100, p=0.1, rate=0.6)
        slices = {
            e.slice for e in events if isinstance(e, gr.instrumentation.PredictionBiasOutOfRange)
        }
        assert slices == {None, "fr"}

    def test_in_range_stays_quiet(self) -> None:
        """Calibrated predictions raise no alarm and leave thresholds alone."""
        threshold = gr.DynamicThreshold(target_rate=0.01, initial=gr.Probability(0.9))
        monitor = gr.OutcomeMonitor(min_outcomes=100, check_every=100, thresholds=[threshold])
        with capture_events() as events:
            for i in range(1000):
                pred = prediction(0.3)
                monitor.record(pred)
                monitor.record_outcome(pred.id, i % 10 < 3)
        assert events == []
        assert not threshold.paused

    def test_calibration_alarm(self) -> None:
        """Predictions far from their labels' frequency by bin exceed the ECE bound."""
        asked: list[gr.instrumentation.Event] = []
        monitor = gr.OutcomeMonitor(
            min_outcomes=100, check_every=100, ece_bound=0.1,
            bias_bounds=(-1.0, 1.0), on_retrain=asked.append,
        )  # fmt: skip
        rng = np.random.default_rng(2)
        with capture_events() as events:
            # Overall unbiased but inverted: high predictions come true half as often.
            for _ in range(400):
                p = float(rng.uniform(0, 1))
                pred = prediction(p)
                monitor.record(pred)
                monitor.record_outcome(pred.id, bool(rng.random() < 1 - p))
        ece = [e for e in events if isinstance(e, gr.instrumentation.CalibrationOutOfRange)]
        assert len(ece) == 1
        assert ece[0].ece > 0.3
        assert asked == ece
        assert monitor.report().ece > 0.3

    def test_failing_retrain_hook_is_counted(self) -> None:
        """A retraining hook that raises is counted and reported, never raised."""

        def broken(event: gr.instrumentation.Event) -> None:
            raise RuntimeError("pager down")

        monitor = gr.OutcomeMonitor(min_outcomes=10, ece_bound=None, on_retrain=broken)
        with capture_events() as events:
            self.feed(monitor, 20, p=0.9, rate=0.0)
        assert monitor.retrain_errors == 1
        assert any(isinstance(e, gr.instrumentation.RetrainHookFailed) for e in events)

    def test_ece_of_perfect_calibration_is_small(self) -> None:
        """Labels drawn with the predicted probability give a small ECE."""
        monitor = gr.OutcomeMonitor(ece_bound=None)
        rng = np.random.default_rng(3)
        for p in rng.uniform(0, 1, 5000).tolist():
            pred = prediction(p)
            monitor.record(pred)
            monitor.record_outcome(pred.id, bool(rng.random() < p))
        assert monitor.report().ece < 0.03


class TestMechanism:
    def test_after_records_the_call(self) -> None:
        """As a mechanism it records the call's prediction, decision and slice."""
        gr.instrumentation.configure(redact=str)  # slice keys as they are
        monitor = gr.OutcomeMonitor(slice=lambda row: row["country"])
        assert isinstance(monitor, gr.mechanisms.Recorder)
        call = make_call({"country": "fr"}, True, prediction=prediction(0.9), model=MODEL)
        monitor.record_call(call)
        monitor.record_outcome(call.prediction.id, 1)
        report = monitor.report()
        assert report.precision == 1.0
        assert "fr" in report.bias_by_slice

    def test_failing_slice_is_counted(self) -> None:
        """A slice key function that raises is counted; the row is still recorded."""
        monitor = gr.OutcomeMonitor(slice=lambda row: row["missing"])
        p = prediction(0.5)
        monitor.record(p, inputs={})
        assert monitor.slice_errors == 1
        assert monitor.record_outcome(p.id, 1)


class TestCountersUnderThreads:
    """The error counters change only under the monitor's lock, so threads lose no counts."""

    def test_slice_errors_wait_for_the_lock(self) -> None:
        """A failing slice key is counted only once the monitor's lock is free."""
        monitor = gr.OutcomeMonitor(slice=lambda row: row["missing"])
        worker = threading.Thread(target=monitor.record, args=(prediction(0.5),),
                                  kwargs={"inputs": {}})  # fmt: skip
        with monitor._lock:
            worker.start()
            worker.join(timeout=0.2)
            assert monitor.slice_errors == 0
        worker.join()
        assert monitor.slice_errors == 1

    def test_retrain_errors_wait_for_the_lock(self) -> None:
        """A failing retraining hook is counted only once the monitor's lock is free."""
        held, release = threading.Event(), threading.Event()
        monitor: gr.OutcomeMonitor

        def hold_lock() -> None:
            with monitor._lock:
                held.set()
                release.wait(5)

        def broken(event: gr.instrumentation.Event) -> None:
            threading.Thread(target=hold_lock).start()
            held.wait(5)
            raise RuntimeError("pager down")

        monitor = gr.OutcomeMonitor(min_outcomes=1, ece_bound=None, on_retrain=broken)
        p = prediction(0.999)  # one label is evidence only for a near-certain prediction
        monitor.record(p)
        worker = threading.Thread(target=monitor.record_outcome, args=(p.id, 0))
        worker.start()
        assert held.wait(5)
        worker.join(timeout=0.2)
        assert monitor.retrain_errors == 0
        release.set()
        worker.join()
        assert monitor.retrain_errors == 1


def _stream(rng: np.random.Generator, labels: int, bias: float) -> int:
    """Bias alarms of one stream whose labels come true at p - bias."""
    alarms: list[gr.instrumentation.Event] = []
    monitor = gr.OutcomeMonitor(
        min_outcomes=100, ece_bound=None, bias_bounds=(-0.05, 0.05), on_retrain=alarms.append
    )
    for p in rng.uniform(0.2, 0.8, labels):
        pred = prediction(float(p))
        monitor.record(pred)
        monitor.record_outcome(pred.id, int(rng.random() < p - bias))
    return len(alarms)


class TestBiasEvidence:
    def test_a_calibrated_model_rarely_alarms_at_small_counts(self) -> None:
        """Of 100 calibrated streams of 200 labels, few alarm: the interval must clear a bound."""
        rng = np.random.default_rng(17)
        alarmed = sum(_stream(rng, 200, 0.0) > 0 for _ in range(100))
        assert alarmed <= 5

    def test_a_biased_model_is_caught(self) -> None:
        """Predictions 0.2 above the outcome rate alarm within 200 labels in most streams."""
        rng = np.random.default_rng(17)
        assert sum(_stream(rng, 200, 0.2) > 0 for _ in range(20)) >= 16


class TestSettings:
    @pytest.mark.parametrize(
        "setting",
        ["capacity", "ttl", "slice", "bias_bounds", "ece_bound", "bins", "min_outcomes",
         "check_every", "max_slices", "on_retrain", "thresholds", "log"],
    )  # fmt: skip
    def test_settings_are_read_only(self, setting: str) -> None:
        """A setting cannot be changed after construction (the buffers are sized from it)."""
        monitor = gr.OutcomeMonitor(capacity=100)
        before = monitor.to_dict()
        with pytest.raises(AttributeError):
            setattr(monitor, setting, 10)
        assert monitor.to_dict() == before


class TestBadConfig:
    @pytest.mark.parametrize(
        "kw",
        [
            {"capacity": 0},
            {"ttl": 0},
            {"ttl": "soon"},
            {"bias_bounds": (0.1, -0.1)},
            {"bias_bounds": 0.1},
            {"ece_bound": 1.5},
            {"bins": 0},
            {"slice": "country"},
            {"on_retrain": 3},
            {"thresholds": [gr.Threshold(0.5, scale=gr.Probability)]},
            {"log": object()},
        ],
    )
    def test_bad_values(self, kw: dict[str, Any]) -> None:
        """Bad capacities, ttls, bounds, keys, hooks and thresholds are ConfigErrors."""
        with pytest.raises(gr.ConfigError):
            gr.OutcomeMonitor(**kw)
