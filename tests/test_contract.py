"""The contract between a guard and its mechanisms: one view of the inputs,
typed roles, veto-only actions, and events that name their guard and model."""

from __future__ import annotations

import contextlib
import gc
import itertools
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import guardrail as gr
from guardrail.testing import capture_events, make_call

MODEL = gr.ModelRef(name="fraud", version="3.1.0")
N = 40
RNG = np.random.default_rng(7)
COLUMNS = {
    "amount": RNG.normal(100.0, 15.0, N),
    "merchant": RNG.integers(0, 4, N).astype(float),
    "user": np.arange(N, dtype=float),
}
REF = gr.Profile.from_columns(
    {
        "amount": RNG.normal(100.0, 15.0, 5_000),
        "merchant": RNG.integers(0, 4, 5_000).astype(float),
        "user": RNG.integers(0, 1_000, 5_000).astype(float),
    }
)
ROWS = [{name: float(COLUMNS[name][i]) for name in REF.names} for i in range(N)]


def n_rows(inputs: Any) -> int:
    if isinstance(inputs, pa.Table):
        return int(inputs.num_rows)
    if isinstance(inputs, dict):
        return len(next(iter(inputs.values())))
    return len(inputs)


class Mechanisms:
    """A fresh set of every built-in mechanism, and the decisions they must give."""

    def __init__(self) -> None:
        self.monitor = gr.SkewMonitor(reference=REF, sample=1.0, every=10_000)
        self.holdout = gr.Holdout(fraction=0.25, unit=lambda row: int(row["user"]), salt="s")
        self.limit = gr.ActionLimit(
            "block", max_actions=3, per="1h", key=lambda row: str(int(row["merchant"]))
        )
        self.outcomes = gr.OutcomeMonitor(slice=lambda row: str(int(row["merchant"])))

    def kwargs(self) -> dict[str, Any]:
        return {
            "model": MODEL,
            "returns": gr.Probability,
            "threshold": gr.Threshold(0.5, scale=gr.Probability),
            "inputs": self.monitor,
            "holdout": self.holdout,
            "limits": [self.limit],
            "outcomes": self.outcomes,
        }

    def expected_act(self) -> list[bool]:
        """Held-out rows do not act; of the others, the first 3 per merchant do."""
        used: dict[float, int] = {}
        out = []
        for row in ROWS:
            if self.holdout.arm(row) == "holdout":
                out.append(False)
                continue
            used[row["merchant"]] = used.get(row["merchant"], 0) + 1
            out.append(used[row["merchant"]] <= 3)
        return out


SHAPES: dict[str, Any] = {
    "list of rows": ROWS,
    "DataFrame": pd.DataFrame(ROWS),
    "2-D array": np.array([[row[n] for n in REF.names] for row in ROWS]),
    "column mapping": {name: COLUMNS[name] for name in REF.names},
    "Arrow table": pa.table({name: COLUMNS[name] for name in REF.names}),
}


class TestEveryShapeOneBehaviour:
    @pytest.mark.parametrize("shape", list(SHAPES))
    def test_every_mechanism_sees_the_same_batch(self, shape: str) -> None:
        """Each input shape gives the same arms, limit counts, profile rows and records."""
        m = Mechanisms()

        @gr.guard(**m.kwargs())
        def predict(batch: Any) -> Any:
            return np.full(n_rows(batch), 0.9)

        with capture_events() as events:
            decision = predict(SHAPES[shape])
        assert not [e for e in events if isinstance(e, gr.instrumentation.MachineryError)]
        assert np.asarray(decision.act).tolist() == m.expected_act()
        assert m.monitor.serving_profile().rows == N
        assert m.outcomes.pending == N
        assert isinstance(decision.arm, np.ndarray)
        held = [m.holdout.arm(row) == "holdout" for row in ROWS]
        assert (decision.arm == "holdout").tolist() == held

    def test_a_keyword_call_reads_the_named_parameter(self) -> None:
        """predict(batch=...) is read like predict(...): no false 'missing' inputs."""
        m = Mechanisms()

        @gr.guard(**m.kwargs())
        def predict(batch: Any, *, scale: float = 0.9) -> Any:
            return np.full(n_rows(batch), scale)

        decision = predict(batch=ROWS)
        assert np.asarray(decision.act).tolist() == m.expected_act()
        report = m.monitor.check()
        assert report is not None
        assert not m.monitor.violations()

    def test_a_method_reads_the_parameter_after_self(self) -> None:
        """A guarded method takes its inputs from the parameter after self."""
        m = Mechanisms()

        class Model:
            @gr.guard(**m.kwargs())
            def predict(self, batch: Any) -> Any:
                return np.full(n_rows(batch), 0.9)

        decision = Model().predict(ROWS)
        assert np.asarray(decision.act).tolist() == m.expected_act()
        assert not m.monitor.violations()

    def test_a_named_input_parameter(self) -> None:
        """input_parameter= picks the parameter holding the inputs."""
        m = Mechanisms()

        @gr.guard(**m.kwargs(), input_parameter="batch")
        def predict(model_version: str, batch: Any) -> Any:
            return np.full(n_rows(batch), 0.9)

        decision = predict("v1", ROWS)
        assert np.asarray(decision.act).tolist() == m.expected_act()
        with pytest.raises(gr.ConfigError, match="'rows' is not a parameter"):
            gr.guard(**Mechanisms().kwargs(), input_parameter="rows")(predict.__wrapped__)

    def test_features_name_positional_columns(self) -> None:
        """features= names the columns of a 2-D array for key functions."""
        limit = gr.ActionLimit(
            "block", max_actions=3, per="1h", key=lambda row: str(int(row["merchant"]))
        )

        @gr.guard(
            model=MODEL,
            returns=gr.Probability,
            threshold=gr.Threshold(0.5, scale=gr.Probability),
            limits=[limit],
            features=REF.names,
        )
        def predict(batch: Any) -> Any:
            return np.full(len(batch), 0.9)

        decision = predict(SHAPES["2-D array"])
        merchants = COLUMNS["merchant"].tolist()
        expected = [merchants[: i + 1].count(m) <= 3 for i, m in enumerate(merchants)]
        assert np.asarray(decision.act).tolist() == expected


class TestInputs:
    def test_one_row_shapes(self) -> None:
        """A mapping of values, a 1-D array and other objects are one row."""
        for raw in ({"a": 1.0}, np.zeros(3), "text", 42, None, {}):
            inputs = gr.mechanisms.Inputs.of(raw)
            assert inputs.batch_size is None
            assert inputs.rows() == [raw]

    def test_batches_agree(self) -> None:
        """Every batch shape gives the same rows and columns."""
        for shape, raw in SHAPES.items():
            inputs = gr.mechanisms.Inputs.of(raw, REF.names)
            assert inputs.batch_size == N, shape
            assert [dict(r) for r in inputs.rows()] == ROWS, shape
            for name in REF.names:
                assert np.asarray(inputs.column(name), dtype=float).tolist() == (
                    COLUMNS[name].tolist()
                ), shape

    def test_positional_rows_without_names(self) -> None:
        """Without names, positional rows stay sequences and have no columns."""
        inputs = gr.mechanisms.Inputs.of([[1.0, 2.0], [3.0, 4.0]])
        assert inputs.rows() == [[1.0, 2.0], [3.0, 4.0]]
        assert inputs.column("a") is None
        with pytest.raises(gr.ConfigError, match="feature names"):
            inputs.columns()

    def test_positional_rows_of_another_width(self) -> None:
        """Rows narrower than the names are no columns (a ConfigError), not a crash."""
        inputs = gr.mechanisms.Inputs.of(np.zeros((2, 2)), ("a", "b", "c"))
        with pytest.raises(gr.ConfigError, match="2 values"):
            inputs.columns()

    def test_uneven_column_mapping_is_one_row(self) -> None:
        """A mapping whose lists differ in length is a row (of list values), not a batch."""
        assert gr.mechanisms.Inputs.of({"a": [1, 2], "b": [3]}).batch_size is None

    @settings(max_examples=300, deadline=None)
    @given(
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=4),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text(max_size=3), children, max_size=4)
            ),
            max_leaves=12,
        )
    )
    def test_never_raises_but_config_error(self, raw: Any) -> None:
        """Any JSON-like input is read as a row or a batch; reading raises only ConfigError."""
        inputs = gr.mechanisms.Inputs.of(raw, ("a", "b"))
        assert len(inputs) >= 0
        for read in (inputs.rows, inputs.columns):
            with contextlib.suppress(gr.ConfigError):
                read()
        assert inputs.column("a") is None or inputs.column("a") is not None


# -- veto only ---------------------------------------------------------------------------

BEHAVIOURS = ("veto_some", "veto_all", "set_act", "decide_again", "assign", "raise", "nothing")


class Adversary:
    """A limiter or recorder that tries, by one means or another, to change the action."""

    kind = "test"

    def __init__(self, name: str, behaviour: str, mask: list[bool]) -> None:
        self.name = name
        self.source = gr.mechanisms.Source("test", name)
        self.behaviour = behaviour
        self.mask = np.array(mask)
        self.seen: list[list[bool]] = []

    def _act(self, call: gr.mechanisms.Call) -> None:
        act = call.act
        assert act is not None
        self.seen.append(np.asarray(act).tolist())
        behaviour = self.behaviour
        if behaviour == "veto_some":
            call.veto(f"veto:{self.name}", self.mask)
        elif behaviour == "veto_all":
            call.veto(f"veto:{self.name}")
        elif behaviour == "set_act":
            call.act = np.ones(len(self.mask), dtype=bool)  # type: ignore[misc]
        elif behaviour == "decide_again":
            call.decide(gr.Threshold(0.0, scale=gr.Probability), np.ones(len(self.mask), bool))
        elif behaviour == "assign":
            call.assign("model", True, 1.0, act=np.ones(len(self.mask), dtype=bool))
        elif behaviour == "raise":
            raise RuntimeError("broken")

    def acquire_call(self, call: gr.mechanisms.Call) -> None:
        self._act(call)

    def refund_call(self, receipt: object, act: object) -> None:
        pass

    def record_call(self, call: gr.mechanisms.Call) -> None:
        self._act(call)


class TestVetoOnly:
    @settings(max_examples=200, deadline=None)
    @given(
        data=st.data(),
        size=st.integers(1, 6),
        limits=st.integers(0, 4),
        recorders=st.integers(0, 3),
        paused=st.booleans(),
    )
    def test_a_vetoed_action_is_never_reopened(
        self, data: st.DataObject, size: int, limits: int, recorders: int, paused: bool
    ) -> None:
        """Whatever mechanisms run, in whatever order, an action only ever turns off."""
        scores = data.draw(st.lists(st.floats(0, 1), min_size=size, max_size=size))

        def adversary(name: str) -> Adversary:
            behaviour = data.draw(st.sampled_from(BEHAVIOURS))
            mask = data.draw(st.lists(st.booleans(), min_size=size, max_size=size))
            return Adversary(name, behaviour, mask)

        chain = [adversary(f"l{i}") for i in range(limits)]
        after = [adversary(f"r{i}") for i in range(recorders)]

        @gr.guard(
            model=MODEL,
            returns=gr.Probability,
            threshold=gr.Threshold(0.5, scale=gr.Probability),
            limits=chain,
            outcomes=after,
        )
        def predict(rows: Any) -> Any:
            return np.array(scores)

        guard = gr.guard_of(predict)
        if paused:
            guard.pause()
        with capture_events():
            decision = predict([{}] * size)
        act = np.asarray(decision.act).tolist()
        allowed = [s >= 0.5 and not paused for s in scores]
        for mechanism in chain:  # recorders cannot veto: the decision is final
            if mechanism.behaviour == "veto_all":
                allowed = [False] * size
            elif mechanism.behaviour == "veto_some":
                allowed = [a and not m for a, m in zip(allowed, mechanism.mask, strict=True)]
        assert act == allowed
        # Every mechanism saw an action no wider than the one before it.
        seen = [m.seen[0] for m in chain + after if m.seen]
        for earlier, later in itertools.pairwise(seen):
            assert all(e or not lt for e, lt in zip(earlier, later, strict=True))
        assert all(not a or s >= 0.5 for a, s in zip(act, scores, strict=True))

    def test_veto_on_one_row(self) -> None:
        """A vetoed row stays vetoed, even decided again; a second veto adds no reason."""
        call = make_call({}, True)
        call.veto("first")
        call.veto("second")
        assert call.act is False
        assert call.reasons == ["first"]
        call.decide(gr.Threshold(0.0, scale=gr.Probability), True)
        call.assign("model", True, 1.0, act=True)
        assert call.act is False
        call.close_decision()
        with pytest.raises(gr.errors.CallStageError):
            call.decide(gr.Threshold(0.0, scale=gr.Probability), True)
        with pytest.raises(AttributeError):
            call.act = True  # type: ignore[misc]

    def test_a_batch_action_is_read_only(self) -> None:
        """The action array handed to mechanisms cannot be written."""
        call = make_call([{}, {}], [True, True])
        act = call.act
        assert isinstance(act, np.ndarray)
        with pytest.raises(ValueError, match="read-only"):
            act[0] = False


class TestRoles:
    @pytest.mark.parametrize(
        ("slot", "mechanism"),
        [
            ("outcomes", gr.DynamicThreshold(target_rate=0.1, initial=gr.Probability(0.9))),
            ("inputs", gr.ActionLimit("a", max_actions=1, per=1)),
            ("outcomes", 42),
            ("holdout", gr.OutcomeMonitor()),
            ("threshold", gr.SkewMonitor(reference=REF)),
        ],
    )
    def test_a_mechanism_in_the_wrong_slot_is_refused(self, slot: str, mechanism: Any) -> None:
        """A mechanism in a slot of another role is a ConfigError when decorating."""
        kwargs: dict[str, Any] = {"threshold": gr.Threshold(0.5, scale=gr.Probability)}
        kwargs[slot] = [mechanism] if slot == "limits" else mechanism
        with pytest.raises(gr.ConfigError, match=f"{slot}= takes"):
            gr.guard(model=MODEL, returns=gr.Probability, **kwargs)

    def test_a_mechanism_serves_one_guard(self) -> None:
        """Giving one mechanism to two guards is refused, naming the first guard."""
        limit = gr.ActionLimit("block", max_actions=1, per=1)
        threshold = gr.Threshold(0.5, scale=gr.Probability)
        first = gr.guard(model=MODEL, returns=gr.Probability, threshold=threshold,
                         limits=[limit], name="first")(lambda row: 0.9)  # fmt: skip
        with pytest.raises(gr.ConfigError, match="already serves guard 'first'"):
            gr.guard(model=MODEL, returns=gr.Probability, threshold=threshold, limits=[limit],
                     name="second")(lambda row: 0.9)  # fmt: skip
        del first  # a guard that is gone frees its mechanisms
        gc.collect()
        gr.guard(model=MODEL, returns=gr.Probability, threshold=threshold, limits=[limit],
                 name="third")(lambda row: 0.9)  # fmt: skip

    def test_two_mechanisms_of_a_kind_need_distinct_names(self) -> None:
        """Events tell mechanisms apart by kind and name, so these must differ."""
        with pytest.raises(gr.ConfigError, match="named 'skew'"):
            gr.guard(
                model=MODEL,
                returns=gr.Probability,
                outcomes=[gr.OutcomeMonitor(name="skew"), gr.OutcomeMonitor(name="skew")],
            )


class TestEventsNameTheirSource:
    def test_every_event_names_its_guard_and_model(self) -> None:
        """Skew, limit, threshold, outcome, log and pause events carry guard and model."""

        class BrokenSink:
            def write(self, record: gr.holdout.DecisionRecord) -> None:
                raise OSError("disk gone")

            def flush(self) -> None:
                pass

            def close(self) -> None:
                pass

        log = gr.DecisionLog(BrokenSink())
        monitor = gr.SkewMonitor(reference=REF, sample=1.0, every=20)
        threshold = gr.DynamicThreshold(target_rate=0.1, initial=gr.Probability(0.5))
        limit = gr.ActionLimit("block", max_actions=1, per="1h")
        outcomes = gr.OutcomeMonitor(capacity=1)

        @gr.guard(
            model=MODEL,
            returns=gr.Probability,
            threshold=threshold,
            inputs=monitor,
            limits=[limit],
            outcomes=[outcomes, log],
            name="fraud-guard",
        )
        def predict(row: dict[str, float]) -> float:
            return 0.99

        shifted = {"amount": 1e6, "merchant": 99.0, "user": -5.0}
        with capture_events() as events:
            for _ in range(25):
                predict(shifted)
            assert monitor.wait(30)
            gr.guard_of(predict).pause("incident")
            gr.guard_of(predict).resume()
        kinds = {e.kind for e in events}
        expected = {
            "skew.detected",
            "limit.exceeded",
            "threshold.changed",
            "outcomes.lost",
            "decision_log.failed",
            "pause.changed",
            "prediction.made",
        }
        assert expected <= kinds
        for event in events:
            assert event.source.guard == "fraud-guard", event
            assert event.source.model == MODEL, event
            fields = event.to_fields()
            assert fields["guard"] == "fraud-guard"
            assert (fields["model.name"], fields["model.version"]) == ("fraud", "3.1.0")
        sources = {(e.kind, e.source.kind, e.source.name) for e in events}
        assert ("limit.exceeded", "limit", "block") in sources
        assert ("skew.detected", "skew", "skew") in sources

    def test_a_mechanism_alone_has_no_guard(self) -> None:
        """Used on its own, a mechanism's events have no guard."""
        limit = gr.ActionLimit("alone", max_actions=1, per="1h")
        with capture_events() as events:
            limit.allow()
            limit.allow()
        assert {e.kind for e in events} == {"limit.near", "limit.exceeded"}
        assert {e.source for e in events} == {gr.mechanisms.Source("limit", "alone")}
