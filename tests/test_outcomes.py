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

    def test_each_group_calls_the_retraining_hook_once_at_its_own_check(self) -> None:
        """One miscalibration of all traffic calls on_retrain once overall and once per slice.

        docs/outcomes.md states it: the groups reach their checks at different
        labels, so the hook is called at as many different labels.
        """
        gr.instrumentation.configure(redact=str)  # slice keys as they are
        asked: list[tuple[int, object]] = []
        label = 0
        monitor = gr.OutcomeMonitor(
            slice=lambda row: row["country"], min_outcomes=100, bias_bounds=(-1.0, 1.0),
            on_retrain=lambda event: asked.append((label, event.slice)),
        )  # fmt: skip
        rng = np.random.default_rng(0)
        countries = ["fr", "de", "it"]
        for label in range(600):
            pred = prediction(float(rng.uniform(0.0, 0.1)))
            monitor.record(pred, inputs={"country": countries[label % 3]})
            monitor.record_outcome(pred.id, bool(rng.random() < 0.9))
        assert sorted(map(str, (key for _, key in asked))) == ["None", "de", "fr", "it"]
        assert asked[0][1] is None
        assert len({at for at, _ in asked}) == 4

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


def _calibration_stream(
    seed: int, labels: int, gap: float = 0.0, **kw: Any
) -> tuple[gr.OutcomeMonitor, list[tuple[int, gr.instrumentation.Event]]]:
    """One stream: p uniform, labels true at p - gap above 0.5 and p + gap below (no bias).

    Returns the monitor and its alarms with the label count each fired at.
    """
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, labels)
    q = np.where(p >= 0.5, p - gap, p + gap)
    y = (rng.random(labels) < q).tolist()
    alarms: list[tuple[int, gr.instrumentation.Event]] = []
    kw.setdefault("capacity", 100_000)
    monitor = gr.OutcomeMonitor(on_retrain=lambda e: alarms.append((count[0], e)), **kw)
    batch = gr.Prediction(gr.Probability(p), MODEL)
    monitor.record(batch)
    count = [0]
    for i, label in enumerate(y):
        count[0] = i + 1
        monitor.record_outcome(f"{batch.id}:{i}", label)
    return monitor, alarms


#: Calibration checks of one group by 200, 1,000 and 5,000 labels with the
#: default cadence (min_outcomes 200, then every max(50, window / 4) labels).
CHECKS_BY = {200: 1, 1_000: 8, 5_000: 15}
#: Each check's false-alarm probability, as docs/outcomes.md states it.
ALPHA = 0.001


class TestCalibrationEvidence:
    def test_calibrated_streams_stay_within_the_stated_false_alarm_rate(self) -> None:
        """100 calibrated streams: alarms by 200/1,000/5,000 labels <= K x 0.1 % + 3 sd."""
        streams = [_calibration_stream(seed, 5_000)[1] for seed in range(100)]
        for labels, checks in CHECKS_BY.items():
            rate = checks * ALPHA
            allowed = 100 * rate + 3 * math.sqrt(100 * rate * (1 - rate))
            for kind in (
                gr.instrumentation.CalibrationOutOfRange,
                gr.instrumentation.PredictionBiasOutOfRange,
            ):
                alarmed = sum(
                    any(isinstance(e, kind) and at <= labels for at, e in alarms)
                    for alarms in streams
                )
                assert alarmed <= allowed, (labels, kind.__name__, alarmed)

    def test_the_cadence_is_geometric(self) -> None:
        """A group is checked at min_outcomes labels, then every max(check_every, window/4)."""
        monitor = gr.OutcomeMonitor(bias_bounds=(-1.0, 1.0))
        checked: list[int] = []
        labels = 0
        original = monitor._calibration  # spying on the schedule

        def spy(slice_id: int) -> gr.outcomes.Calibration:
            checked.append(labels)
            return original(slice_id)

        monitor._calibration = spy  # type: ignore[method-assign]
        for i in range(5_000):
            pred = prediction(0.5)
            monitor.record(pred)
            labels = i + 1
            monitor.record_outcome(pred.id, i % 2)
        assert checked[:8] == [200, 250, 312, 390, 487, 608, 760, 950]
        assert sum(c <= 1_000 for c in checked) == CHECKS_BY[1_000]
        assert sum(c <= 5_000 for c in checked) == CHECKS_BY[5_000]

    def test_an_ece_of_0_2_is_reported_within_2000_labels(self) -> None:
        """An unbiased, overconfident model (ECE 0.2) alarms by 2,000 labels in 20 of 20 streams."""
        first: list[int] = []
        for seed in range(20):
            _, alarms = _calibration_stream(seed, 2_000, gap=0.2)
            ece = [
                (at, e)
                for at, e in alarms
                if isinstance(e, gr.instrumentation.CalibrationOutOfRange)
            ]
            assert ece, seed
            at, event = ece[0]
            assert isinstance(event, gr.instrumentation.CalibrationOutOfRange)
            assert event.slice is None
            assert event.lower > 0.1 == event.bound
            assert event.lower <= 0.2 <= event.upper
            assert event.ece == pytest.approx(0.2, abs=0.08)
            assert not any(
                isinstance(e, gr.instrumentation.PredictionBiasOutOfRange) for _, e in alarms
            )
            first.append(at)
        assert sorted(first)[10] <= 1_200  # the median stream: by 1,187 labels

    def test_a_slice_alarms_on_its_own(self) -> None:
        """A miscalibrated slice raises its own alarm; the calibrated rest stays quiet."""
        gr.instrumentation.configure(redact=str)  # slice keys as they are
        rng = np.random.default_rng(4)
        monitor = gr.OutcomeMonitor(slice=lambda row: row["country"], bias_bounds=(-1.0, 1.0))
        seen: dict[str, tuple[list[float], list[float]]] = {"de": ([], []), "fr": ([], [])}
        with capture_events() as events:
            for i in range(4_000):
                country = "de" if i % 4 == 0 else "fr"
                p = float(rng.uniform(0, 1))
                q = p if country == "fr" else (p - 0.3 if p >= 0.5 else p + 0.3)
                pred = prediction(p)
                label = bool(rng.random() < q)
                monitor.record(pred, inputs={"country": country})
                monitor.record_outcome(pred.id, label)
                seen[country][0].append(p)
                seen[country][1].append(float(label))
        alarms = [e for e in events if isinstance(e, gr.instrumentation.CalibrationOutOfRange)]
        assert [e.slice for e in alarms] == ["de"]
        report = monitor.report()
        de, fr = report.calibration_by_slice["de"], report.calibration_by_slice["fr"]
        for key, found in (("de", de), ("fr", fr)):
            p_s, y_s = (np.array(v) for v in seen[key])
            assert found == gr.outcomes.calibration(p_s, y_s)
        assert de.lower > 0.1
        assert de.lower <= 0.3 <= de.upper
        assert fr.lower <= 0.1
        assert report.calibration.lower <= 0.1

    def test_hook_and_freeze_follow_only_interval_alarms(self) -> None:
        """A calibrated stream whose plug-in ECE passes the bound calls no hook, pauses nothing."""
        for seed in range(200):
            rng = np.random.default_rng(seed)
            p = rng.uniform(0, 1, 200)
            y = (rng.random(200) < p).astype(float)
            if gr.outcomes.calibration(p, y).plug_in > 0.1:
                break
        else:
            pytest.fail("no calibrated stream of 200 labels had a plug-in ECE above 0.1")
        threshold = gr.DynamicThreshold(target_rate=0.01, initial=gr.Probability(0.9))
        asked: list[gr.instrumentation.Event] = []
        monitor = gr.OutcomeMonitor(thresholds=[threshold], on_retrain=asked.append)
        batch = gr.Prediction(gr.Probability(p), MODEL)
        monitor.record(batch)
        for i, label in enumerate(y.tolist()):
            monitor.record_outcome(f"{batch.id}:{i}", int(label))
        report = monitor.report()
        assert report.calibration.plug_in > 0.1  # the point estimate would have alarmed
        assert report.calibration.lower <= 0.1
        assert asked == []
        assert not threshold.paused

    def test_a_calibration_alarm_asks_to_retrain_and_leaves_thresholds_moving(self) -> None:
        """The hook gets the calibration alarm; thresholds pause on bias alarms only."""
        threshold = gr.DynamicThreshold(target_rate=0.01, initial=gr.Probability(0.9))
        monitor, alarms = _calibration_stream(1, 2_000, gap=0.25, thresholds=[threshold])
        assert [type(e) for _, e in alarms] == [gr.instrumentation.CalibrationOutOfRange]
        assert not threshold.paused
        assert monitor.report().calibration.lower > 0.1


class TestCalibrationFunction:
    @pytest.mark.parametrize("seed", range(5))
    def test_interval_holds_the_estimates(self, seed: int) -> None:
        """lower <= debiased estimate <= plug-in <= upper, and the truth is inside."""
        rng = np.random.default_rng(seed)
        p = rng.uniform(0, 1, 3_000)
        for gap in (0.0, 0.1, 0.2):
            q = np.where(p >= 0.5, p - gap, p + gap)
            c = gr.outcomes.calibration(p, (rng.random(p.size) < q).astype(float))
            assert c.lower <= c.estimate <= c.plug_in <= c.upper
            assert c.lower <= gap <= c.upper
            assert c.estimate == pytest.approx(gap, abs=0.03)
            assert (c.outcomes, c.bins) == (3_000, 10)

    def test_debiasing_removes_much_of_the_noise(self) -> None:
        """On calibrated labels the debiased estimate averages well below the plug-in one."""
        estimates, plug_ins = [], []
        for seed in range(50):
            rng = np.random.default_rng(seed)
            p = rng.uniform(0, 1, 1_000)
            c = gr.outcomes.calibration(p, (rng.random(p.size) < p).astype(float))
            estimates.append(c.estimate)
            plug_ins.append(c.plug_in)
        assert np.mean(estimates) < 0.65 * np.mean(plug_ins)  # 0.019 against 0.032

    def test_no_outcomes(self) -> None:
        """No labelled predictions: nan, with zero outcomes."""
        c = gr.outcomes.calibration(np.array([]), np.array([]))
        assert math.isnan(c.estimate)
        assert c.outcomes == 0

    @pytest.mark.parametrize(("n", "bins"), [(1, 1), (2, 1), (5, 2), (19, 9), (20, 10), (500, 10)])
    def test_every_bin_holds_two_labels(self, n: int, bins: int) -> None:
        """Below twice the bins, fewer bins are used, so that each holds at least two labels."""
        p = np.linspace(0.01, 0.99, n)
        c = gr.outcomes.calibration(p, (p > 0.5).astype(float))
        assert c.bins == bins

    def test_a_single_label_is_no_evidence(self) -> None:
        """One label, however far from its prediction, gets the interval [0, 1]."""
        c = gr.outcomes.calibration(np.array([0.002]), np.array([1.0]))
        assert (c.lower, c.upper) == (0.0, 1.0)

    def test_a_lone_positive_among_rare_events_does_not_clear_the_bound(self) -> None:
        """Ten predictions at 0.002 with one positive label: the interval still reaches 0.01."""
        p = np.full(10, 0.002)
        y = np.zeros(10)
        y[3] = 1.0
        assert gr.outcomes.calibration(p, y).lower <= 0.01
