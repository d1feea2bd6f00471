"""DynamicThreshold: a rate tracker on the log-odds scale, clamped, versioned, pausable."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import guardrail as gr
from guardrail.testing import capture_events, make_call

MODEL = gr.ModelRef(name="fraud", version="3.1.0")
OTHER = gr.ModelRef(name="fraud", version="4.0.0")


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def dyn(**kw: Any) -> gr.DynamicThreshold[Any]:
    args: dict[str, Any] = {"target_rate": 0.1, "initial": gr.Probability(0.5), "step": 0.1}
    args.update(kw)
    return gr.DynamicThreshold(**args)


@pytest.fixture(autouse=True)
def _quiet() -> None:
    gr.configure(hooks=[])


class TestCurrent:
    def test_starts_at_initial_version_one(self) -> None:
        """The first saved threshold is the initial value, version 1, origin dynamic."""
        t = dyn(initial=gr.Probability(0.9), model=MODEL)
        current = t.current()
        assert current.value == pytest.approx(0.9)
        assert current.version == 1
        assert current.origin == "dynamic"
        assert current.scale is gr.Probability
        assert current.model is MODEL

    @pytest.mark.parametrize("initial", [0.9, 0.1, 0.3, 0.7, 0.999, 1e-6])
    def test_publishes_the_initial_value_exactly(self, initial: float) -> None:
        """A threshold created at p publishes exactly p, also after a restart."""
        t = dyn(initial=gr.Probability(initial))
        assert t.current().value == initial
        assert t.tracker.value == pytest.approx(initial)
        assert gr.DynamicThreshold.restore(t.snapshot_json()).current().value == initial

    def test_publishes_a_clamp_exactly(self) -> None:
        """A threshold held at a clamp publishes the clamp's configured value."""
        t = dyn(upper=gr.Probability(0.7), dead_band=0.0)
        with capture_events() as events:
            for _ in range(50):
                t.update(gr.Probability(0.99))
        assert t.current().value == 0.7
        assert [e.value for e in events if isinstance(e, gr.instrumentation.ThresholdClampHit)] == [
            0.7
        ]

    def test_is_a_mechanism(self) -> None:
        """A DynamicThreshold plays the guard's decider role."""
        assert isinstance(dyn(), gr.mechanisms.Decider)


class TestUpdate:
    def test_above_moves_up_below_moves_down(self) -> None:
        """A score above raises the log-odds by step*(1-r); one below lowers it by step*r."""
        t = dyn(dead_band=100.0)
        t.update(gr.Probability(0.9))
        assert logit(t.tracker.value) == pytest.approx(0.1 * 0.9)
        t.update(gr.Probability(0.1))
        assert logit(t.tracker.value) == pytest.approx(0.1 * 0.9 - 0.1 * 0.1)

    @given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=50))
    def test_each_score_moves_it_by_at_most_one_step(self, ps: list[float]) -> None:
        """No single score moves the tracker by more than the step."""
        gr.configure(hooks=[])
        t = dyn(dead_band=0.0)
        for p in ps:
            before = logit(t.tracker.value)
            t.update(gr.Probability(p))
            assert abs(logit(t.tracker.value) - before) <= 0.1 + 1e-9

    def test_saves_a_new_version_only_outside_the_dead_band(self) -> None:
        """The saved value changes (with a new version) once the tracker leaves the dead band."""
        t = dyn(dead_band=0.25)
        with capture_events() as events:
            t.update(gr.Probability(0.9))  # +0.09
            t.update(gr.Probability(0.9))  # +0.18
            assert t.current().version == 1
            t.update(gr.Probability(0.9))  # +0.27 > 0.25
        assert t.current().version == 2
        assert t.current().value == pytest.approx(sigmoid(0.27))
        changed = [e for e in events if isinstance(e, gr.instrumentation.ThresholdChanged)]
        assert [(e.version, round(e.value, 6)) for e in changed] == [(2, round(sigmoid(0.27), 6))]

    def test_warmup_holds_the_threshold(self) -> None:
        """The first warmup scores are counted but do not move the threshold."""
        t = dyn(warmup=3, dead_band=0.0)
        for _ in range(3):
            t.update(gr.Probability(0.99))
        assert t.tracker.value == pytest.approx(0.5)
        assert t.seen == 3
        t.update(gr.Probability(0.99))
        assert logit(t.tracker.value) == pytest.approx(0.09)

    def test_warmup_applies_to_batches(self) -> None:
        """A batch straddling the end of the warm-up moves only with the rest."""
        t = dyn(warmup=3, dead_band=0.0)
        t.update(gr.Probability(np.full(5, 0.99)))
        assert logit(t.tracker.value) == pytest.approx(2 * 0.09)

    def test_refuses_another_scale(self) -> None:
        """Updating a probability threshold with log-odds is a ScaleError."""
        with pytest.raises(gr.errors.ScaleError):
            dyn().update(gr.LogOdds(0.3))  # type: ignore[arg-type]

    def test_score_is_tracked_on_its_own_scale(self) -> None:
        """A Score threshold moves by the step in score units."""
        t = gr.DynamicThreshold(target_rate=0.25, initial=gr.Score(10.0), step=2.0, dead_band=0)
        t.update(gr.Score(11.0))
        assert t.tracker.value == pytest.approx(11.5)
        t.update(gr.Score(0.0))
        assert t.tracker.value == pytest.approx(11.0)
        assert t.current().scale is gr.Score

    def test_log_odds_threshold(self) -> None:
        """A LogOdds threshold tracks on log-odds directly."""
        t = gr.DynamicThreshold(target_rate=0.5, initial=gr.LogOdds(1.0), dead_band=0.0)
        t.update(gr.LogOdds(math.inf))
        assert t.current().value == pytest.approx(1.05)

    def test_holds_when_fed_certain_zeros_for_long(self) -> None:
        """Scores of exactly 0 forever drive it down to an implicit clamp, never to a crash."""
        t = gr.DynamicThreshold(target_rate=0.5, initial=gr.Probability(0.5), step=50.0)
        for _ in range(40):
            t.update(gr.Probability(0.0))
        t.update(gr.Probability(np.zeros(10)))
        assert 0.0 < t.tracker.value < 1e-300
        assert t.clamp_hits == 1
        t.update(gr.Probability(1.0))
        assert t.tracker.value > 0.0


class TestClamps:
    def test_upper_clamp_holds_and_alarms_once(self) -> None:
        """Reaching the upper clamp stops the threshold there and emits one alarm."""
        t = dyn(upper=gr.Probability(0.6), dead_band=0.0)
        with capture_events() as events:
            for _ in range(20):
                t.update(gr.Probability(0.99))
        assert t.tracker.value == pytest.approx(0.6)
        hits = [e for e in events if isinstance(e, gr.instrumentation.ThresholdClampHit)]
        assert len(hits) == 1
        assert hits[0].bound == "upper"
        assert hits[0].value == pytest.approx(0.6)
        assert t.clamp_hits == 1

    def test_lower_clamp_in_a_batch(self) -> None:
        """A batch that would cross the lower clamp ends on it, with an alarm."""
        t = dyn(lower=gr.Probability(0.45), dead_band=0.0)
        with capture_events() as events:
            t.update(gr.Probability(np.zeros(1000)))
        assert t.tracker.value == pytest.approx(0.45)
        assert [e.bound for e in events if isinstance(e, gr.instrumentation.ThresholdClampHit)] == [
            "lower"
        ]

    def test_alarms_again_after_leaving_the_clamp(self) -> None:
        """Once the tracker has moved well away, hitting the clamp again alarms again."""
        t = dyn(upper=gr.Probability(0.6), dead_band=0.0)
        with capture_events() as events:
            for _ in range(10):
                t.update(gr.Probability(0.99))
            t.update(gr.Probability(np.zeros(100)))  # down by 1.0 log-odds
            for _ in range(30):
                t.update(gr.Probability(0.99))
        assert sum(isinstance(e, gr.instrumentation.ThresholdClampHit) for e in events) == 2


def sequential(t0: float, xs: list[float], up: float, down: float, lo: float, hi: float) -> float:
    t = t0
    for x in xs:
        t = min(hi, max(lo, t + (up if x >= t else down)))
    return t


class TestBatch:
    def test_equals_sequential_away_from_the_threshold(self) -> None:
        """Scores far from the threshold give the same result in one batch as one by one."""
        rng = np.random.default_rng(1)
        ps = np.concatenate([rng.uniform(0.0, 0.2, 900), rng.uniform(0.95, 1.0, 100)])
        rng.shuffle(ps)
        one, many = dyn(dead_band=0.0), dyn(dead_band=0.0)
        one.update(gr.Probability(ps))
        for p in ps.tolist():
            many.update(gr.Probability(p))
        assert logit(one.tracker.value) == pytest.approx(logit(many.tracker.value), abs=1e-9)

    @settings(max_examples=200)
    @given(
        xs=st.lists(st.floats(-3, 3), min_size=1, max_size=60),
        lo=st.floats(-2, 0),
        hi=st.floats(0, 2),
        rate=st.floats(0.01, 0.99),
    )
    def test_differs_from_sequential_by_at_most_step_per_changed_comparison(
        self, xs: list[float], lo: float, hi: float, rate: float
    ) -> None:
        """|batch - sequential| <= step * (scores whose comparison changed within the batch)."""
        gr.configure(hooks=[])
        step = 0.3
        t = gr.DynamicThreshold(
            target_rate=rate, initial=gr.LogOdds(0.0), step=step,
            lower=gr.LogOdds(lo), upper=gr.LogOdds(hi), dead_band=0.0,
        )  # fmt: skip
        t.update(gr.LogOdds(np.array(xs)))
        up, down = step * (1 - rate), -step * rate
        seq, changed = 0.0, 0
        for x in xs:
            changed += (x >= seq) != (x >= 0.0)
            seq = min(hi, max(lo, seq + (up if x >= seq else down)))
        assert abs(t.tracker.value - seq) <= step * changed + 1e-9
        # ... and it is exactly the sequential walk with comparisons at the start.
        frozen = 0.0
        for x in xs:
            frozen = min(hi, max(lo, frozen + (up if x >= 0.0 else down)))
        assert t.tracker.value == pytest.approx(frozen, abs=1e-9)


class TestPause:
    def test_paused_threshold_does_not_move(self) -> None:
        """While paused, scores are counted and the threshold stays; resume() lets it move."""
        t = dyn(dead_band=0.0)
        with capture_events() as events:
            t.pause("incident 42")
            t.update(gr.Probability(0.99))
            t.update(gr.Probability(np.full(10, 0.99)))
            assert t.paused
            assert t.tracker.value == pytest.approx(0.5)
            assert t.seen == 11
            t.resume()
            t.update(gr.Probability(0.99))
        assert logit(t.tracker.value) == pytest.approx(0.09)
        switched = [e for e in events if isinstance(e, gr.instrumentation.PauseChanged)]
        assert [(e.paused, e.reason) for e in switched] == [
            (True, "incident 42"),
            (False, "resumed by hand"),
        ]


class TestMechanism:
    def test_after_sets_threshold_above_act_then_updates(self) -> None:
        """decide_call(call) decides with the saved threshold, then moves the tracker."""
        t = dyn(model=MODEL, dead_band=0.0)
        call = make_call({}, prediction=0.7, model=MODEL)
        t.decide_call(call)
        assert call.threshold is not None
        assert call.threshold.version == 1
        assert call.above is True
        assert call.act is True
        assert t.current().version == 2

    def test_after_on_a_batch(self) -> None:
        """A batch gets an array of decisions against one threshold version."""
        t = dyn(dead_band=0.0)
        call = make_call(np.zeros((3, 2)), prediction=[0.2, 0.6, 0.5], model=MODEL)
        t.decide_call(call)
        assert isinstance(call.act, np.ndarray)
        assert call.act.tolist() == [False, True, True]

    def test_model_mismatch(self) -> None:
        """A threshold set for one model refuses another model's prediction."""
        t = dyn(model=MODEL)
        call = make_call({}, prediction=0.7, model=OTHER)
        with pytest.raises(gr.errors.ModelMismatchError):
            t.decide_call(call)

    def test_decide_records_value_and_version(self) -> None:
        """decide() returns a Decision carrying the threshold value and version used."""
        t = dyn(dead_band=0.0)
        first = t.decide(gr.Prediction(gr.Probability(0.9), MODEL))
        second = t.decide(gr.Prediction(gr.Probability(0.9), MODEL))
        assert (first.threshold.version, second.threshold.version) == (1, 2)
        assert second.threshold.value > first.threshold.value

    def test_threads_lose_no_update(self) -> None:
        """Four threads updating at once end where one thread would."""
        n = 5_000
        shared, alone = dyn(), dyn()

        def work() -> None:
            for _ in range(n):
                shared.update(gr.Probability(0.01))

        threads = [threading.Thread(target=work) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        for _ in range(4 * n):
            alone.update(gr.Probability(0.01))
        assert shared.seen == 4 * n
        assert shared.tracker.value == alone.tracker.value
        assert shared.current().version == alone.current().version


class TestSnapshot:
    def test_restarted_process_resumes(self) -> None:
        """restore(snapshot_json()) gives the same threshold, version and future."""
        t = dyn(model=MODEL, upper=gr.Probability(0.8), warmup=2, dead_band=0.05)
        for p in (0.9, 0.9, 0.9, 0.2, 0.95):
            t.update(gr.Probability(p))
        t.pause("checking")
        back = gr.DynamicThreshold.restore(t.snapshot_json())
        assert back.current() == t.current()
        assert back.tracker.value == pytest.approx(t.tracker.value)
        assert back.paused
        assert back.seen == t.seen
        assert back.snapshot() == t.snapshot()
        assert gr.DynamicThreshold.restore(t.snapshot()).snapshot() == t.snapshot()
        t.resume()
        back.resume()
        for p in (0.99, 0.99, 0.1):
            t.update(gr.Probability(p))
            back.update(gr.Probability(p))
        assert back.current().value == pytest.approx(t.current().value)
        assert back.current().version == t.current().version

    def test_to_dict_is_settings_only(self) -> None:
        """to_dict() describes the settings, which do not change as scores arrive."""
        t = dyn()
        before = t.to_dict()
        t.update(gr.Probability(0.99))
        assert t.to_dict() == before
        assert before["target_rate"] == 0.1

    def test_snapshot_is_versioned_json(self) -> None:
        """The snapshot names its format and version."""
        data = json.loads(dyn().snapshot_json())
        assert data["format"] == "guardrail.dynamic_threshold"
        assert data["version"] == 3

    def test_version_2_snapshots_still_restore(self) -> None:
        """A version 2 snapshot (no tracked key) restores, its tracker taken from the log-odds."""
        t = dyn()
        for p in (0.99, 0.99, 0.1):
            t.update(gr.Probability(p))
        data = t.snapshot()
        data["version"] = 2
        del data["state"]["tracked"]
        back = gr.DynamicThreshold.restore(data)
        assert back.current() == t.current()
        assert back.tracker.value == pytest.approx(t.tracker.value, rel=1e-12)
        data["state"]["tracked"] = t.snapshot()["state"]["tracked"]
        with pytest.raises(gr.errors.FormatError, match="tracked"):
            gr.DynamicThreshold.restore(data)

    @pytest.mark.parametrize(
        ("path", "value"),
        [
            ((), {"extra": 1}),
            (("version",), 1),
            (("version",), 4),
            (("version",), 3.0),
            (("format",), "something.else"),
            (("config", "scale"), "kelvin"),
            (("config", "target_rate"), 1.5),
            (("state", "tracker"), 5.0),
            (("state", "tracker"), "NaN"),
            (("state", "tracked"), 1e300),
            (("state", "tracked"), 2.0),
            (("state", "tracked"), -1.0),
            (("state", "version"), 0),
            (("state", "seen"), -1),
            (("state", "paused"), "yes"),
            (("state", "at_clamp"), "sideways"),
            (("state",), {"tracker": 0.0}),
        ],
    )
    def test_strict_load(self, path: tuple[str, ...], value: object) -> None:
        """A snapshot with unknown, missing or bad fields is a FormatError."""
        data = dyn(upper=gr.Probability(0.9)).snapshot()
        if path:
            target = data
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        else:
            data.update(value)  # type: ignore[call-overload]
        with pytest.raises(gr.errors.FormatError):
            gr.DynamicThreshold.restore(data)

    def test_not_json(self) -> None:
        """Text that is not JSON is a FormatError."""
        with pytest.raises(gr.errors.FormatError):
            gr.DynamicThreshold.restore("{nope")

    def test_deeply_nested_json(self) -> None:
        """JSON nested too deeply for the parser is a FormatError, not a RecursionError."""
        with pytest.raises(gr.errors.FormatError):
            gr.DynamicThreshold.restore("[" * 100_000 + "]" * 100_000)


class TestBadConfig:
    @pytest.mark.parametrize("rate", [0.0, 1.0, -0.1, 1.5, math.nan, "0.1", True])
    def test_target_rate_outside_open_unit_interval(self, rate: object) -> None:
        """A target rate outside (0, 1) is a ConfigError."""
        with pytest.raises(gr.ConfigError):
            dyn(target_rate=rate)

    def test_clamps_that_exclude_the_initial_value(self) -> None:
        """Clamps that exclude the initial value are a ConfigError."""
        with pytest.raises(gr.ConfigError, match="exclude"):
            dyn(initial=gr.Probability(0.9), upper=gr.Probability(0.8))
        with pytest.raises(gr.ConfigError, match="exclude"):
            dyn(initial=gr.Probability(0.1), lower=gr.Probability(0.2))

    def test_clamp_on_another_scale(self) -> None:
        """A clamp on another scale than the initial value is a ScaleError."""
        with pytest.raises(gr.errors.ScaleError):
            dyn(upper=gr.LogOdds(2.0))

    @pytest.mark.parametrize(
        "kw",
        [
            {"step": 0.0},
            {"step": math.inf},
            {"dead_band": -1.0},
            {"warmup": -1},
            {"warmup": 1.5},
            {"initial": gr.Probability(1.0)},
            {"initial": gr.Probability(1e-310)},
            {"initial": gr.Probability(np.array([0.5]))},
            {"name": ""},
            {"model": "fraud"},
        ],
    )
    def test_other_bad_values(self, kw: dict[str, Any]) -> None:
        """Bad steps, dead bands, warm-ups, initial values, names and models are ConfigErrors."""
        with pytest.raises(gr.ConfigError):
            dyn(**kw)

    def test_score_needs_a_step(self) -> None:
        """A Score threshold has no default step."""
        with pytest.raises(gr.ConfigError, match="step"):
            gr.DynamicThreshold(target_rate=0.1, initial=gr.Score(3.0))

    def test_initial_must_be_typed(self) -> None:
        """A bare float as the initial value is a ScaleError."""
        with pytest.raises(gr.errors.ScaleError):
            gr.DynamicThreshold(target_rate=0.1, initial=0.9)  # type: ignore[type-var]


def _simulation() -> Any:
    path = Path(__file__).parent.parent / "benchmarks" / "sim_thresholds.py"
    spec = importlib.util.spec_from_file_location("sim_thresholds", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


class TestSimulation:
    def test_holds_the_target_rate_on_a_shifting_stream(self) -> None:
        """On a drifting, jumping stream the realised rate stays near 1 %; a fixed one does not."""
        out = _simulation().simulate()
        assert out.dynamic_gap < 0.003
        assert out.dynamic_worst < 0.015
        assert out.fixed_gap > 20 * out.dynamic_gap


def ramp_scores(kind: str, seed: int, n: int = 6_000, spread: float = 0.03) -> np.ndarray:
    """Log-odds scores narrowly spread around a mean that rises, falls or steps."""
    rng = np.random.default_rng(seed)
    if kind == "rising":
        mean = np.linspace(-2.0, 0.0, n)
    elif kind == "falling":
        mean = np.linspace(0.0, -2.0, n)
    else:
        mean = np.where(np.arange(n) < n // 2, -2.0, -1.0)
    return mean + spread * rng.standard_normal(n)


RAMPS = [(kind, seed) for kind in ("rising", "falling", "step") for seed in range(3)]


class TestDecisionsFollowTheTracker:
    @pytest.mark.parametrize(("kind", "seed"), RAMPS)
    def test_dead_band_does_not_change_decisions(self, kind: str, seed: int) -> None:
        """On ramps up, down and a step, the default dead band decides exactly as dead_band=0."""
        ps = 1.0 / (1.0 + np.exp(-ramp_scores(kind, seed)))
        banded, exact = (
            dyn(initial=gr.Probability(0.12), dead_band=None),
            dyn(initial=gr.Probability(0.12), dead_band=0.0),
        )
        a = [banded.decide(gr.Prediction(gr.Probability(p), MODEL)) for p in ps.tolist()]
        b = [exact.decide(gr.Prediction(gr.Probability(p), MODEL)) for p in ps.tolist()]
        assert [d.above for d in a] == [d.above for d in b]
        assert [d.threshold.value for d in a] == [d.threshold.value for d in b]
        # Versions differ: the dead band spaces them out, and only them.
        assert banded.current().version < exact.current().version
        assert 0.08 < np.mean([d.above for d in a]) < 0.12

    @pytest.mark.parametrize(("kind", "seed"), RAMPS)
    @pytest.mark.parametrize("order", ["as drawn", "reversed", "shuffled"])
    def test_rate_guarantee(self, kind: str, seed: int, order: str) -> None:
        """|rate - r| = |t_N - t_0| / (step N) <= (max(b, t0) - min(a, t0) + step) / (step N)."""
        xs = ramp_scores(kind, seed)
        if order == "reversed":
            xs = xs[::-1]
        elif order == "shuffled":
            xs = np.random.default_rng(seed + 100).permutation(xs)
        step, rate, t0 = 0.1, 0.1, -1.0
        t = gr.DynamicThreshold(target_rate=rate, initial=gr.LogOdds(t0), step=step)
        positives = sum(bool(t.decide(gr.Prediction(gr.LogOdds(x), MODEL)).above) for x in xs)
        n = xs.size
        moved = t.tracker.value - t0
        # The identity, exactly (up to rounding): positives - r N = (t_N - t_0) / step.
        assert positives - rate * n == pytest.approx(moved / step, abs=1e-6)
        bound = (max(float(xs.max()), t0) - min(float(xs.min()), t0) + step) / (step * n)
        assert abs(positives / n - rate) <= bound
        assert bound < 0.004  # 6,000 decisions, scores within [-2.1, 0.1]

    @pytest.mark.parametrize("kind", ["rising", "falling", "step"])
    def test_rate_guarantee_on_the_probability_scale_and_in_batches(self, kind: str) -> None:
        """The identity holds for probabilities (tracked on log-odds) and batch decisions."""
        ps = 1.0 / (1.0 + np.exp(-ramp_scores(kind, 5)))
        t = dyn(initial=gr.Probability(0.2), dead_band=None)
        positives = 0
        for chunk in np.array_split(ps, 300):
            call = make_call(np.zeros((chunk.size, 1)), prediction=chunk.tolist(), model=MODEL)
            t.decide_call(call)
            assert isinstance(call.above, np.ndarray)
            positives += int(call.above.sum())
        moved = logit(t.tracker.value) - logit(0.2)
        assert positives - 0.1 * ps.size == pytest.approx(moved / 0.1, abs=1e-6)

    def test_decisions_carry_the_value_used_and_the_saved_version(self) -> None:
        """A decision's threshold is the tracker's value, under the last saved version."""
        t = dyn(initial=gr.Probability(0.5), dead_band=0.25)
        first = t.decide(gr.Prediction(gr.Probability(0.9), MODEL))
        second = t.decide(gr.Prediction(gr.Probability(0.9), MODEL))
        assert first.threshold.value == 0.5  # the configured value, exactly
        assert second.threshold.value == pytest.approx(sigmoid(0.09))
        assert second.threshold.version == 1 == t.current().version
        assert t.current().value == 0.5
        assert t.tracker.value == pytest.approx(sigmoid(0.18))
        third = t.decide(gr.Prediction(gr.Probability(0.9), MODEL))  # tracker to 0.27: saved
        assert third.threshold.version == 1
        fourth = t.decide(gr.Prediction(gr.Probability(0.1), MODEL))
        assert fourth.threshold.version == 2
        assert fourth.threshold.value == pytest.approx(sigmoid(0.27))

    def test_a_clamped_tracker_decides_at_the_clamp_exactly(self) -> None:
        """Held at a clamp, decisions carry the clamp's configured value."""
        t = dyn(upper=gr.Probability(0.7))
        for _ in range(50):
            t.update(gr.Probability(0.99))
        decision = t.decide(gr.Prediction(gr.Probability(0.7), MODEL))
        assert decision.threshold.value == 0.7
        assert decision.above is True
