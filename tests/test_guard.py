"""The guard decorator and the Guard object beneath it."""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
from typing import Any

import attrs
import numpy as np
import pytest

import guardrail as gr
from guardrail.testing import capture_events

MODEL = gr.ModelRef(name="fraud", version="3.1.0", consumers=("card-blocker",))
THRESHOLD = gr.Threshold(0.8, scale=gr.Probability, model=MODEL, version=3)


class Recorder:
    """A mechanism of every role that records what it saw and can veto or fail on demand."""

    kind = "test"

    def __init__(self, name: str, *, veto: bool = False, fail: str = "") -> None:
        self.name = name
        self.source = gr.mechanisms.Source("test", name)
        self.seen: list[tuple[str, Any]] = []
        self.veto = veto
        self.fail = fail

    def observe_call(self, call: gr.mechanisms.Call) -> None:
        if self.fail == "before":
            raise RuntimeError("broken before")
        self.seen.append(("before", call.inputs.raw))

    def _after(self, call: gr.mechanisms.Call) -> None:
        if self.fail == "after":
            raise RuntimeError("broken after")
        if self.fail == "policy":
            raise gr.PolicyError("user chose to stop")
        self.seen.append(("after", call.act))
        if self.veto:
            call.veto(f"veto:{self.name}")

    def decide_call(self, call: gr.mechanisms.Call) -> None:
        self._after(call)

    def assign_call(self, call: gr.mechanisms.Call) -> None:
        self._after(call)

    def acquire_call(self, call: gr.mechanisms.Call) -> None:
        self._after(call)

    def refund_call(self, receipt: object, act: object) -> None:
        pass

    def record_call(self, call: gr.mechanisms.Call) -> None:
        self._after(call)


@pytest.fixture(autouse=True)
def _no_hooks() -> None:
    gr.configure(hooks=[])


class TestDecorator:
    def test_scalar_prediction_with_provenance(self) -> None:
        """A guarded scalar call returns a typed Prediction that knows its model."""

        @gr.guard(model=MODEL, returns=gr.Probability)
        def predict(row: dict[str, float]) -> float:
            return 0.25

        p = predict({"amount": 3.0})
        assert isinstance(p, gr.Prediction)
        assert p.value == gr.Probability(0.25)
        assert p.model is MODEL
        assert p.id

    def test_keeps_name_doc_and_signature(self) -> None:
        """functools.wraps: name, docstring and signature are the function's."""

        def predict(row: dict[str, float], *, scale: float = 1.0) -> float:
            """Score a row."""
            return 0.1

        guarded = gr.guard(model=MODEL, returns=gr.Probability)(predict)
        assert guarded.__name__ == "predict"
        assert guarded.__doc__ == "Score a row."
        assert inspect.signature(guarded) == inspect.signature(predict)

    def test_batch_array_and_list(self) -> None:
        """A 1-D array or a list of numbers becomes a batch prediction."""

        @gr.guard(model=MODEL, returns=gr.LogOdds)
        def predict(rows: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
            return rows.sum(axis=1)

        p = predict(np.ones((1000, 3)))
        assert p.value.is_batch
        assert p.value.value.shape == (1000,)

        @gr.guard(model=MODEL, returns=gr.Score)
        def listing(rows: list[float]) -> list[float]:
            return [float(r) for r in rows]

        assert listing([1.0, 2.0]).value.value.tolist() == [1.0, 2.0]

    def test_async(self) -> None:
        """async def predict functions stay coroutine functions."""

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD)
        async def predict(row: dict[str, float]) -> float:
            await asyncio.sleep(0)
            return 0.9

        assert inspect.iscoroutinefunction(predict)
        decision = asyncio.run(predict({}))
        assert decision.act is True
        assert decision.threshold.version == 3

    def test_async_batch_and_exception(self) -> None:
        """Async batches work and async exceptions propagate unchanged."""

        @gr.guard(model=MODEL, returns=gr.Probability)
        async def predict(rows: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
            if rows.size == 0:
                raise LookupError("empty")
            return np.full(rows.shape[0], 0.5)

        assert asyncio.run(predict(np.zeros((4, 2)))).value.value.tolist() == [0.5] * 4
        with pytest.raises(LookupError, match="empty"):
            asyncio.run(predict(np.zeros((0, 2))))

    def test_threshold_gives_decisions(self) -> None:
        """With a threshold, each call returns a Decision carrying its threshold."""

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD)
        def predict(score: float) -> float:
            return score

        assert predict(0.9).act is True
        low = predict(0.5)
        assert low.act is False
        assert low.above is False
        assert low.threshold is THRESHOLD

    def test_batch_decision(self) -> None:
        """A batch decision acts row by row."""

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD)
        def predict(rows: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
            return rows[:, 0]

        d = predict(np.array([[0.1], [0.95], [0.8]]))
        assert isinstance(d.act, np.ndarray)
        assert d.act.tolist() == [False, True, True]

    def test_own_exceptions_propagate_unchanged(self) -> None:
        """The predict function's exception is re-raised as the same object."""
        error = KeyError("amount")

        @gr.guard(model=MODEL, returns=gr.Probability)
        def predict(row: dict[str, float]) -> float:
            raise error

        with pytest.raises(KeyError) as caught:
            predict({})
        assert caught.value is error
        assert gr.guard_of(predict).stats().errors == 1


class TestBatchOwnership:
    def test_a_fresh_result_array_is_locked_not_copied(self) -> None:
        """An array only the guard holds becomes the batch itself, made read-only."""
        import weakref

        made: list[weakref.ref[np.ndarray]] = []  # type: ignore[type-arg]

        @gr.guard(model=MODEL, returns=gr.Probability)
        def predict(rows: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
            out = np.full(rows.shape[0], 0.5)
            made.append(weakref.ref(out))
            return out

        p = predict(np.zeros((4, 2)))
        assert p.value.value is made[0]()
        assert not p.value.value.flags.writeable

    def test_an_array_kept_elsewhere_is_copied_and_left_writeable(self) -> None:
        """An array the predict function also keeps stays the caller's: the batch is a copy."""
        kept: list[np.ndarray] = []  # type: ignore[type-arg]

        @gr.guard(model=MODEL, returns=gr.Probability)
        def predict(rows: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
            out = np.full(rows.shape[0], 0.5)
            kept.append(out)
            return out

        p = predict(np.zeros((4, 2)))
        assert kept[0].flags.writeable
        assert not np.shares_memory(kept[0], p.value.value)
        kept[0][0] = 0.9
        assert p.value.value[0] == 0.5

    def test_a_view_is_copied(self) -> None:
        """A view into the caller's input is never locked or shared."""
        rows = np.full((4, 2), 0.5)

        @gr.guard(model=MODEL, returns=gr.Probability)
        def predict(rows: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
            return rows[:, 0]

        p = predict(rows)
        assert rows.flags.writeable
        assert not np.shares_memory(rows, p.value.value)


class TestOutOfScale:
    @pytest.mark.parametrize("bad", [1.7, math.nan, "0.3", None, np.array([0.2, 1.2])])
    def test_raises_by_default(self, bad: object) -> None:
        """1.7, NaN, a string, None, a bad batch: PredictionOutOfScaleError, a PolicyError."""

        @gr.guard(model=MODEL, returns=gr.Probability)
        def predict(row: object) -> Any:
            return bad

        with pytest.raises(gr.errors.PredictionOutOfScaleError) as caught:
            predict({})
        assert isinstance(caught.value, gr.PolicyError)
        assert gr.guard_of(predict).stats().out_of_scale == 1

    def test_record_passes_through_and_takes_no_action(self) -> None:
        """With on_out_of_scale='record' the value passes, an event is emitted, no action."""

        @gr.guard(
            model=MODEL, returns=gr.Probability, threshold=THRESHOLD, on_out_of_scale="report"
        )
        def predict(row: object) -> float:
            return 1.7

        with capture_events() as events:
            d = predict({})
        assert d.prediction.value.value == 1.7
        assert d.act is False
        assert d.reasons == ("out-of-scale",)
        assert [e.kind for e in events if e.kind != "prediction.made"] == [
            "prediction.out_of_scale"
        ]

    def test_record_string_without_threshold(self) -> None:
        """A string passes through unchanged under 'record'."""

        @gr.guard(model=MODEL, returns=gr.Probability, on_out_of_scale="report")
        def predict(row: object) -> Any:
            return "high"

        with capture_events():
            assert predict({}).value.value == "high"


class TestBadConfiguration:
    def test_not_callable(self) -> None:
        """Decorating something that is not callable is a ConfigError."""
        with pytest.raises(gr.ConfigError, match="function"):
            gr.guard(model=MODEL, returns=gr.Probability)(42)  # type: ignore[call-overload]

    def test_generator_function(self) -> None:
        """A generator function is refused: it does not return its prediction."""

        def predict(row: object) -> Any:
            yield 0.3

        with pytest.raises(gr.ConfigError, match="generator"):
            gr.guard(model=MODEL, returns=gr.Probability)(predict)

    def test_returns_must_be_a_scale(self) -> None:
        """returns=float is a ScaleError."""
        with pytest.raises(gr.errors.ScaleError, match="returns"):
            gr.guard(model=MODEL, returns=float)  # type: ignore[call-overload]

    def test_threshold_scale_must_match(self) -> None:
        """A log-odds threshold on a probability guard is refused at decoration."""
        with pytest.raises(gr.errors.ScaleError):
            gr.guard(
                model=MODEL,
                returns=gr.Probability,
                threshold=gr.Threshold(0.0, scale=gr.LogOdds),  # type: ignore[arg-type]
            )

    def test_threshold_model_must_match(self) -> None:
        """A threshold set for another model version is refused."""
        other = attrs.evolve(MODEL, version="4.0.0")
        with pytest.raises(gr.errors.ModelMismatchError):
            gr.guard(
                model=other,
                returns=gr.Probability,
                threshold=THRESHOLD,
            )

    def test_limits_need_a_threshold(self) -> None:
        """Limits act on decisions, so they need a threshold."""
        with pytest.raises(gr.ConfigError, match="threshold"):
            gr.guard(model=MODEL, returns=gr.Probability, limits=[Recorder("cap")])

    def test_mechanism_must_follow_protocol(self) -> None:
        """A slot given an object without its role's methods is a ConfigError."""
        with pytest.raises(gr.ConfigError, match="input monitor"):
            gr.guard(model=MODEL, returns=gr.Probability, inputs="monitor")  # type: ignore[call-overload]

    def test_bad_policy_and_name(self) -> None:
        """Unknown out-of-scale policies and empty names are refused."""
        with pytest.raises(gr.ConfigError):
            gr.guard(model=MODEL, returns=gr.Probability, on_out_of_scale="clip")  # type: ignore[call-overload]
        with pytest.raises(gr.ConfigError):
            gr.guard(model=MODEL, returns=gr.Probability, name="")

    def test_model_must_be_a_model_ref(self) -> None:
        """model='fraud' is a ConfigError."""
        with pytest.raises(gr.ConfigError):
            gr.guard(model="fraud", returns=gr.Probability)  # type: ignore[call-overload]


class TestMechanisms:
    def test_order_and_veto(self) -> None:
        """Inputs run before; threshold, holdout, limits, outcomes after, in order."""
        inputs, holdout = Recorder("inputs"), Recorder("holdout")
        limit, outcomes = Recorder("cap", veto=True), Recorder("outcomes")

        @gr.guard(
            model=MODEL,
            returns=gr.Probability,
            threshold=THRESHOLD,
            inputs=inputs,
            holdout=holdout,
            limits=[limit],
            outcomes=outcomes,
        )
        def predict(row: dict[str, float]) -> float:
            return 0.9

        d = predict({"amount": 1.0})
        assert inputs.seen == [("before", {"amount": 1.0})]
        assert holdout.seen == [("after", True)]
        assert limit.seen == [("after", True)]
        assert outcomes.seen == [("after", False)]
        assert d.act is False
        assert d.above is True
        assert d.reasons == ("veto:cap",)

    @pytest.mark.parametrize("where", ["before", "after"])
    def test_machinery_failure_never_changes_the_prediction(self, where: str) -> None:
        """A mechanism that raises is counted and reported; the call goes on."""
        broken = Recorder("monitor", fail=where)

        @gr.guard(model=MODEL, returns=gr.Probability, inputs=broken, outcomes=broken)
        def predict(row: object) -> float:
            return 0.4

        with capture_events() as events:
            p = predict({})
        assert p.value == gr.Probability(0.4)
        errors = [e for e in events if isinstance(e, gr.instrumentation.MachineryError)]
        assert len(errors) == 1
        assert errors[0].source == gr.mechanisms.Source(
            "test", "monitor", gr.guard_of(predict).name, MODEL
        )
        assert errors[0].error == "RuntimeError"  # the type only: messages may hold inputs
        assert gr.guard_of(predict).stats().machinery_errors == 1

    def test_failed_threshold_step_gives_degraded_no_action(self) -> None:
        """If the threshold mechanism fails, the decision is degraded and does not act."""
        broken = Recorder("dynamic", fail="after")

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=broken)
        def predict(row: object) -> float:
            return 0.99

        with capture_events():
            d = predict({})
        assert d.act is False
        assert d.degraded is True
        assert d.prediction.value == gr.Probability(0.99)

    def test_policy_errors_propagate(self) -> None:
        """A PolicyError from a mechanism is the user's chosen policy: it propagates."""
        strict = Recorder("cap", fail="policy")

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[strict])
        def predict(row: object) -> float:
            return 0.9

        with pytest.raises(gr.PolicyError, match="user chose"):
            predict({})

    def test_batch_inputs_are_counted(self) -> None:
        """A mechanism sees the batch size of a 2-D array or a list of rows."""
        sizes: list[int | None] = []

        class Sizes(Recorder):
            def observe_call(self, call: gr.mechanisms.Call) -> None:
                sizes.append(call.batch_size)

        @gr.guard(model=MODEL, returns=gr.Probability, inputs=Sizes("sizes"))
        def predict(rows: object) -> Any:
            return 0.5 if isinstance(rows, dict) else np.full(3, 0.5)

        predict(np.zeros((3, 2)))
        predict([{"a": 1}, {"a": 2}, {"a": 3}])
        predict([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        predict({"a": 1})
        assert sizes == [3, 3, 3, None]


class TestMechanismChecks:
    def test_dynamic_threshold_scale_checked_at_decoration(self) -> None:
        """A threshold mechanism on another scale is refused when decorating."""
        with pytest.raises(gr.errors.ScaleError):
            gr.guard(
                model=MODEL,
                returns=gr.Probability,
                threshold=gr.DynamicThreshold(target_rate=0.1, initial=gr.LogOdds(0.0)),
            )

    def test_dynamic_threshold_model_checked_at_decoration(self) -> None:
        """A threshold mechanism set for another model version is refused."""
        other = attrs.evolve(MODEL, version="9")
        with pytest.raises(gr.errors.ModelMismatchError):
            gr.guard(
                model=MODEL,
                returns=gr.Probability,
                threshold=gr.DynamicThreshold(
                    target_rate=0.1, initial=gr.Probability(0.5), model=other
                ),
            )

    def test_a_mechanism_can_refuse_a_configuration(self) -> None:
        """A mechanism's check_config(config) runs once at decoration and may refuse it."""

        class OnlyLogOdds(Recorder):
            def check_config(self, config: gr.GuardConfig) -> None:
                if config.returns is not gr.LogOdds:
                    raise gr.errors.ScaleError("needs log-odds")

        with pytest.raises(gr.errors.ScaleError, match="needs log-odds"):
            gr.guard(model=MODEL, returns=gr.Probability, inputs=OnlyLogOdds("x"))
        gr.guard(model=MODEL, returns=gr.LogOdds, inputs=OnlyLogOdds("x"))


class TestKillSwitch:
    def test_guard_pause_stops_actions_not_predictions(self) -> None:
        """A paused guard still predicts, but no action is taken."""
        limit = Recorder("cap")

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[limit])
        def predict(row: object) -> float:
            return 0.95

        g = gr.guard_of(predict)
        with capture_events() as events:
            g.pause("incident 42")
            d = predict({})
            g.resume()
        assert d.prediction.value == gr.Probability(0.95)
        assert d.act is False
        assert d.reasons == ("paused",)
        assert limit.seen == [("after", False)]
        assert [e.paused for e in events if isinstance(e, gr.instrumentation.PauseChanged)] == [
            True,
            False,
        ]
        assert predict({}).act is True

    def test_global_pause(self) -> None:
        """pause_all() stops every guard until resume_all()."""

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD)
        def predict(row: object) -> float:
            return 0.95

        gr.pause_all("all hands")
        try:
            assert predict({}).act is False
            assert gr.guard_of(predict).stats().paused is True
        finally:
            gr.resume_all()
        assert predict({}).act is True


class TestRegistry:
    def test_lists_guards_with_counters(self) -> None:
        """registry() shows each guard's name, model, fingerprint and counts."""

        @gr.guard(model=MODEL, returns=gr.Probability, name="registry-test")
        def predict(row: object) -> float:
            return 0.5

        for _ in range(3):
            predict({})
        (stats,) = [s for s in gr.registry() if s.name == "registry-test"]
        assert stats.model == MODEL
        assert stats.calls == 3
        assert stats.config_fingerprint == gr.guard_of(predict).config.fingerprint

    def test_default_name_is_qualified(self) -> None:
        """A guard is named after the function it decorates."""

        @gr.guard(model=MODEL, returns=gr.Probability)
        def predict(row: object) -> float:
            return 0.5

        assert gr.guard_of(predict).name.endswith("test_default_name_is_qualified.<locals>.predict")

    def test_guard_of_plain_function(self) -> None:
        """guard_of() on an unguarded function is a ConfigError."""
        with pytest.raises(gr.ConfigError):
            gr.guard_of(print)

    def test_thread_safety(self) -> None:
        """Eight threads calling one guard: every call counted, every id unique."""

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD)
        def predict(row: object) -> float:
            return 0.9

        ids: list[str] = []
        lock = threading.Lock()

        def work() -> None:
            mine = [predict({}).prediction.id for _ in range(500)]
            with lock:
                ids.extend(mine)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(ids)) == 4000
        assert gr.guard_of(predict).stats().calls == 4000


class TestObjectAPI:
    def test_run_without_decorator(self) -> None:
        """Guard(config).run(fn, *args) guards a call without decorating."""
        g: gr.Guard[Any] = gr.Guard(
            gr.GuardConfig(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, name="obj")
        )
        d = g.run(lambda row: 0.9, {"a": 1})
        assert isinstance(d, gr.Decision)
        assert d.act is True
        assert asyncio.run(g.run_async(_async_score, {"a": 1})).act is True

    def test_guard_needs_a_config(self) -> None:
        """Guard() refuses anything but a GuardConfig."""
        with pytest.raises(gr.ConfigError):
            gr.Guard({"model": MODEL})  # type: ignore[arg-type]


async def _async_score(row: object) -> float:
    return 0.95


class TestPredictionEvents:
    def test_capture_events_sees_each_prediction(self) -> None:
        """A hook that wants predictions gets one PredictionMade per call, no raw inputs."""

        @gr.guard(model=MODEL, returns=gr.Probability, name="events")
        def predict(row: object) -> float:
            return 0.3

        with capture_events() as events:
            p = predict({"secret": 123456.0})
        (event,) = events
        assert isinstance(event, gr.instrumentation.PredictionMade)
        assert event.prediction_id == p.id
        assert event.score == 0.3
        assert 0 < event.duration_s < 1
        assert "123456" not in repr(event.to_fields())


class TestBadDocuments:
    def test_deeply_nested_model_json(self) -> None:
        """A ModelRef from JSON nested a million deep is a FormatError, not a RecursionError."""
        with pytest.raises(gr.errors.FormatError):
            gr.ModelRef.from_json("[" * 1_000_000 + "]" * 1_000_000)

    def test_outcome_monitor_refuses_scores(self) -> None:
        """An outcome monitor on a Score guard is refused when decorating."""
        with pytest.raises(gr.errors.ScaleError, match="outcome monitor"):
            gr.guard(model=MODEL, returns=gr.Score, outcomes=gr.OutcomeMonitor())
