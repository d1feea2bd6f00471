"""Holdout by hashed unit id, propensities, and the decision log."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import guardrail as gr
from guardrail.mechanisms import Call
from guardrail.testing import capture_events, make_call

MODEL = gr.ModelRef(name="fraud", version="3.1.0")


def holdout(**kw: Any) -> gr.Holdout:
    args: dict[str, Any] = {"fraction": 0.2, "unit": lambda row: row["user_id"], "salt": "s1"}
    args.update(kw)
    return gr.Holdout(**args)


@pytest.fixture(autouse=True)
def _quiet() -> None:
    gr.configure(hooks=[])


def call_for(row: Any, p: float, act: bool | None) -> Call:
    return make_call(row, act, prediction=p, model=MODEL, guard="g")


class TestAssignment:
    def test_reproducible_across_processes(self) -> None:
        """The same salt and unit give the same arm in another process."""
        h = holdout()
        here = [h.arm({"user_id": i}) for i in range(200)]
        code = (
            "import guardrail as gr\n"
            "h = gr.Holdout(fraction=0.2, unit=lambda r: r['user_id'], salt='s1')\n"
            "print(','.join(h.arm({'user_id': i}) for i in range(200)))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)  # fmt: skip
        assert out.stdout.strip().split(",") == here

    def test_fraction_is_respected(self) -> None:
        """About *fraction* of many units land in the holdout."""
        held, _ = holdout().assign([{"user_id": i} for i in range(20_000)])
        assert held.mean() == pytest.approx(0.2, abs=0.01)

    def test_salt_changes_the_draw(self) -> None:
        """Another salt draws another holdout."""
        rows = [{"user_id": i} for i in range(2000)]
        a, _ = holdout(salt="a").assign(rows)
        b, _ = holdout(salt="b").assign(rows)
        assert (a != b).sum() > 100

    def test_zero_fraction_holds_out_nobody(self) -> None:
        """fraction=0 sends every unit to the model arm."""
        held, _ = holdout(fraction=0.0).assign([{"user_id": i} for i in range(1000)])
        assert not held.any()

    def test_salt_is_shown_only_by_its_fingerprint(self) -> None:
        """repr and to_dict show a short sha256 prefix of the salt, never the salt."""
        h = holdout(salt="s3cret-salt")
        shown = repr(h) + json.dumps(h.to_dict())
        assert "s3cret-salt" not in shown
        assert h.to_dict()["salt_fingerprint"] in repr(h)
        assert len(h.salt_fingerprint) == 12
        assert holdout(salt="s3cret-salt").to_dict() == h.to_dict()
        assert holdout(salt="s3cret-salt2").to_dict() != h.to_dict()

    def test_hashed_unit_hides_the_id(self) -> None:
        """The logged unit is 16 hex digits that do not contain the raw id."""
        hashed = holdout().hashed_unit({"user_id": "alice@example.com"})
        assert len(hashed) == 16
        assert "alice" not in hashed
        assert hashed == holdout().hashed_unit({"user_id": "alice@example.com"})


def units(h: gr.Holdout, arm: str) -> dict[str, int]:
    for i in range(1000):
        if h.arm({"user_id": i}) == arm:
            return {"user_id": i}
    raise AssertionError("no unit found")


class TestMechanism:
    def test_is_a_mechanism(self) -> None:
        """A Holdout plays the guard's assigner role."""
        assert isinstance(holdout(), gr.mechanisms.Assigner)
        assert not isinstance(holdout(), gr.mechanisms.Limiter)

    def test_holdout_arm_gets_the_default_action(self) -> None:
        """In the holdout arm an action is vetoed with reason 'holdout'; propensity = fraction."""
        h = holdout()
        call = call_for(units(h, "holdout"), 0.9, True)
        h.assign_call(call)
        assert (call.arm, call.act, call.reasons) == ("holdout", False, ["holdout"])
        assert call.propensity == pytest.approx(0.2)

    def test_model_arm_keeps_the_decision(self) -> None:
        """In the model arm the decision stands; propensity = 1 - fraction."""
        h = holdout()
        call = call_for(units(h, "model"), 0.9, True)
        h.assign_call(call)
        assert (call.arm, call.act, call.reasons) == ("model", True, [])
        assert call.propensity == pytest.approx(0.8)

    def test_agreeing_arms_have_propensity_one(self) -> None:
        """When the model's decision equals the default action, it was certain."""
        h = holdout()
        for arm in ("model", "holdout"):
            call = call_for(units(h, arm), 0.1, False)
            h.assign_call(call)
            assert call.propensity == 1.0

    def test_propensity_is_floored(self) -> None:
        """A holdout smaller than the floor records the floor."""
        h = holdout(fraction=0.001, propensity_floor=0.05)
        call = call_for(units(h, "holdout"), 0.9, True)
        h.assign_call(call)
        assert call.propensity == 0.05

    def test_default_action_true(self) -> None:
        """With default_action=True the holdout arm acts."""
        h = holdout(default_action=True)
        call = call_for(units(h, "holdout"), 0.1, False)
        h.assign_call(call)
        assert call.act is True
        assert call.reasons == ["holdout"]

    def test_intended_action_per_arm(self) -> None:
        """The intended action is the model's in the model arm, the default in the holdout arm."""
        h = holdout()
        for arm, intended, propensity in (("model", True, 0.8), ("holdout", False, 0.2)):
            call = call_for(units(h, arm), 0.9, True)
            h.assign_call(call)
            assert (call.intended, call.propensity) == (intended, pytest.approx(propensity))

    def test_batch(self) -> None:
        """A batch gets arrays of arms and propensities, vetoed where held out."""
        h = holdout(fraction=0.5)
        rows = [{"user_id": i} for i in range(40)]
        call = make_call(rows, [True] * 40, prediction=[0.9] * 40, model=MODEL)
        h.assign_call(call)
        held = np.array([h.arm(r) == "holdout" for r in rows])
        assert isinstance(call.arm, np.ndarray)
        assert (call.arm == "holdout").tolist() == held.tolist()
        assert isinstance(call.act, np.ndarray)
        assert call.act.tolist() == (~held).tolist()
        assert isinstance(call.propensity, np.ndarray)
        assert call.propensity.tolist() == [0.5] * 40
        assert call.reasons == ["holdout"]
        assert isinstance(call.intended, np.ndarray)
        assert call.intended.tolist() == (~held).tolist()


class TestBadConfig:
    @pytest.mark.parametrize(
        "kw",
        [
            {"fraction": 1.0},
            {"fraction": -0.1},
            {"fraction": "5%"},
            {"salt": ""},
            {"unit": "user_id"},
            {"default_action": 0},
            {"propensity_floor": 0.0},
            {"propensity_floor": 1.5},
        ],
    )
    def test_bad_values(self, kw: dict[str, Any]) -> None:
        """Fractions outside [0, 1), empty salts and bad floors are ConfigErrors."""
        with pytest.raises(gr.ConfigError):
            holdout(**kw)


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


class BrokenSink(ListSink):
    """A sink whose disk is gone."""

    def write(self, record: gr.holdout.DecisionRecord) -> None:
        raise OSError("disk gone")


def guarded(log: gr.DecisionLog, h: gr.Holdout, monitor: gr.OutcomeMonitor | None = None,
            row: Any = None) -> Call:  # fmt: skip
    """Run threshold -> holdout -> outcomes by hand, the way a guard does."""
    threshold = gr.DynamicThreshold(target_rate=0.1, initial=gr.Probability(0.5), model=MODEL)
    call = make_call(row or {"user_id": 7}, prediction=0.9, model=MODEL, guard="g")
    threshold.decide_call(call)
    h.assign_call(call)
    call.close_decision()
    if monitor is not None:
        monitor.record_call(call)
    else:
        log.record_call(call)
    return call


class TestDecisionLog:
    def test_a_fixed_threshold_is_covered_by_the_fingerprint(self) -> None:
        """A log built with a fixed Threshold fingerprints its settings, as a dynamic one does."""
        low = gr.holdout.DecisionLog(ListSink(), threshold=gr.Threshold(0.5, scale=gr.Probability))
        high = gr.holdout.DecisionLog(ListSink(), threshold=gr.Threshold(0.6, scale=gr.Probability))
        assert low.fingerprint != high.fingerprint
        with pytest.raises(gr.ConfigError, match="Threshold or a DynamicThreshold"):
            gr.holdout.DecisionLog(ListSink(), threshold=0.5)  # type: ignore[arg-type]

    def test_record_has_what_off_policy_evaluation_needs(self) -> None:
        """A record holds id, hashed unit, time, model, score, threshold, action, arm, config."""
        sink = ListSink()
        h = holdout()
        log = gr.DecisionLog(sink, holdout=h)
        call = guarded(log, h)
        (record,) = sink.records
        assert call.prediction is not None
        assert record.decision_id == call.prediction.id
        assert record.unit == h.hashed_unit({"user_id": 7})
        assert record.timestamp == call.prediction.created_at
        assert (record.model, record.model_version) == ("fraud", "3.1.0")
        assert (record.score, record.scale) == (0.9, "probability")
        assert (record.threshold, record.threshold_version) == (pytest.approx(0.5), 1)
        assert record.action is call.act
        assert record.intended is call.intended
        assert record.reasons == tuple(call.reasons)
        assert record.arm == call.arm
        assert record.propensity == call.propensity
        assert record.config == log.fingerprint
        assert len(log.fingerprint) == 64

    def test_a_limit_veto_keeps_the_intended_action_and_its_propensity(self) -> None:
        """A model-arm action vetoed by a limit logs intended=True, its propensity, action=False."""
        sink = ListSink()
        h = holdout()
        log = gr.DecisionLog(sink, holdout=h)
        cap = gr.ActionLimit("cap", max_actions=1, per="1h")

        @gr.guard(model=MODEL, returns=gr.Probability, holdout=h, limits=[cap], outcomes=log,
                  threshold=gr.Threshold(0.5, scale=gr.Probability))  # fmt: skip
        def predict(row: dict[str, int]) -> float:
            return 0.9

        model_row, held_row = units(h, "model"), units(h, "holdout")
        acted, vetoed, held = predict(model_row), predict(model_row), predict(held_row)
        assert (vetoed.act, vetoed.intended, vetoed.reasons) == (False, True, ("limit:cap",))
        assert vetoed.propensity == pytest.approx(0.8)
        logged = [(r.intended, r.propensity, r.action, r.reasons, r.arm) for r in sink.records]
        assert logged == [
            (True, pytest.approx(0.8), True, (), "model"),
            (True, pytest.approx(0.8), False, ("limit:cap",), "model"),
            (False, pytest.approx(0.2), False, ("holdout",), "holdout"),
        ]
        assert (acted.act, held.act) == (True, False)

    def test_fingerprint_follows_the_configuration(self) -> None:
        """Another holdout configuration gives another fingerprint."""
        a = gr.DecisionLog(ListSink(), holdout=holdout(salt="a"))
        b = gr.DecisionLog(ListSink(), holdout=holdout(salt="b"))
        assert a.fingerprint != b.fingerprint

    def test_joins_with_outcomes_by_id(self) -> None:
        """The log's decision ids are the ids record_outcome joins on."""
        sink = ListSink()
        h = holdout()
        log = gr.DecisionLog(sink, holdout=h)
        monitor = gr.OutcomeMonitor(log=log)
        guarded(log, h, monitor)
        assert monitor.record_outcome(sink.records[0].decision_id, 1)

    def test_batch_writes_one_record_per_row(self) -> None:
        """A batch decision writes a record per row with row ids and arrays split."""
        sink = ListSink()
        log = gr.DecisionLog(sink)
        pred = gr.Prediction(gr.Probability(np.array([0.2, 0.8])), MODEL)
        decision = gr.Threshold(0.5, scale=gr.Probability).decide(pred)
        log.write(decision)
        assert [r.decision_id for r in sink.records] == [f"{pred.id}:0", f"{pred.id}:1"]
        assert [r.action for r in sink.records] == [False, True]

    def test_failing_sink_is_counted_never_raised(self) -> None:
        """A sink that raises loses the record, counts it and reports at doubling counts."""
        log = gr.DecisionLog(BrokenSink())
        with capture_events() as events:
            for _ in range(5):
                log.write(gr.Prediction(gr.Probability(0.5), MODEL))
        assert log.dropped_error == 5
        failed = [
            (e.reason, e.count)
            for e in events
            if isinstance(e, gr.instrumentation.DecisionLogFailed)
        ]
        assert failed == [("error", 1), ("error", 2), ("error", 4)]

    def test_failing_unit_function_is_counted_never_raised(self) -> None:
        """write() counts and reports a unit function that fails on the inputs, never raises."""
        sink = ListSink()
        log = gr.DecisionLog(sink, holdout=gr.Holdout(unit=lambda r: r["user"], salt="s"))
        with capture_events() as events:
            log.write(gr.Prediction(gr.Probability(0.5), MODEL), inputs={"x": 1})
        assert (log.dropped_error, log.written, sink.records) == (1, 0, [])
        assert [
            e.reason for e in events if isinstance(e, gr.instrumentation.DecisionLogFailed)
        ] == ["error"]

    def test_bad_sink(self) -> None:
        """A sink without write/flush/close is a ConfigError."""
        with pytest.raises(gr.ConfigError):
            gr.DecisionLog(object())  # type: ignore[arg-type]


class TestJsonLinesSink:
    def test_writes_on_close_and_reads_back(self, tmp_path: Path) -> None:
        """Records buffered below flush_every reach the file on close."""
        path = tmp_path / "d.jsonl"
        with gr.holdout.JsonLinesSink(path, flush_every=100) as sink:
            log = gr.DecisionLog(sink)
            for _ in range(3):
                log.write(gr.Prediction(gr.Probability(0.5), MODEL))
            assert sink.buffered == 3
            assert not path.exists()
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(lines) == 3
        assert lines[0]["score"] == 0.5
        assert set(lines[0]) == {a.name for a in gr.holdout.DecisionRecord.__attrs_attrs__}

    def test_infinite_values_are_strict_json(self, tmp_path: Path) -> None:
        """Infinite scores and thresholds are written "inf"/"-inf", so every line is strict JSON."""

        def refuse(name: str) -> None:
            raise ValueError(f"not JSON: {name}")

        path = tmp_path / "d.jsonl"
        with gr.holdout.JsonLinesSink(path) as sink:
            log = gr.DecisionLog(sink)
            for score, cut in ((math.inf, -math.inf), (-math.inf, math.inf)):
                pred = gr.Prediction(gr.LogOdds(score), MODEL)
                log.write(gr.Threshold(cut, scale=gr.LogOdds).decide(pred))
            log.write(gr.Prediction(gr.LogOdds(np.array([math.inf, 0.0])), MODEL))
        assert log.written == 4
        rows = [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]
        assert [(r["score"], r["threshold"]) for r in rows] == [
            ("inf", "-inf"), ("-inf", "inf"), ("inf", None), (0.0, None),
        ]  # fmt: skip

    def test_flushes_every_n(self, tmp_path: Path) -> None:
        """Every flush_every records the buffer goes to the file."""
        path = tmp_path / "d.jsonl"
        sink = gr.holdout.JsonLinesSink(path, flush_every=2, max_buffer=4)
        log = gr.DecisionLog(sink)
        for _ in range(5):
            log.write(gr.Prediction(gr.Probability(0.5), MODEL))
        assert len(path.read_text().splitlines()) == 4
        sink.close()
        assert len(path.read_text().splitlines()) == 5

    def test_full_buffer_drops_and_counts(self, tmp_path: Path) -> None:
        """When the file cannot be written, the buffer fills and further records are counted."""
        sink = gr.holdout.JsonLinesSink(tmp_path / "missing-dir" / "d.jsonl", flush_every=2,
                                max_buffer=3)  # fmt: skip
        log = gr.DecisionLog(sink)
        with capture_events() as events:
            for _ in range(6):
                log.write(gr.Prediction(gr.Probability(0.5), MODEL))
        assert sink.buffered == 3
        assert log.dropped_full == 3
        assert (log.accepted, log.written) == (3, 0)
        assert any(
            isinstance(e, gr.instrumentation.DecisionLogFailed) and e.reason == "full"
            for e in events
        )
        with pytest.raises(FileNotFoundError):
            sink.close()

    def test_unwritable_at_exit_is_reported(self, tmp_path: Path) -> None:
        """Records that cannot be written at exit are reported on stderr, not lost silently."""
        code = (
            "import guardrail as gr, sys\n"
            "gr.configure(hooks=[])\n"
            "sink = gr.holdout.JsonLinesSink(sys.argv[1])\n"
            "log = gr.DecisionLog(sink)\n"
            "m = gr.ModelRef(name='m', version='1')\n"
            "for _ in range(2): log.write(gr.Prediction(gr.Probability(0.5), m))\n"
        )
        path = tmp_path / "missing" / "d.jsonl"
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                             text=True, check=True)  # fmt: skip
        assert "2 decision records not written" in out.stderr

    def test_no_loss_at_interpreter_exit(self, tmp_path: Path) -> None:
        """Records still buffered when the process ends normally reach the file."""
        path = tmp_path / "d.jsonl"
        code = (
            "import guardrail as gr, sys\n"
            "gr.configure(hooks=[])\n"
            "sink = gr.holdout.JsonLinesSink(sys.argv[1], flush_every=1000)\n"
            "log = gr.DecisionLog(sink)\n"
            "m = gr.ModelRef(name='m', version='1')\n"
            "for _ in range(7): log.write(gr.Prediction(gr.Probability(0.5), m))\n"
        )
        subprocess.run([sys.executable, "-c", code, str(path)], check=True)
        assert len(path.read_text().splitlines()) == 7

    def test_write_after_close_is_an_error_the_log_counts(self, tmp_path: Path) -> None:
        """Writing to a closed sink raises SinkClosedError, which the log counts and reports."""
        path = tmp_path / "d.jsonl"
        sink = gr.holdout.JsonLinesSink(path, flush_every=1)
        log = gr.DecisionLog(sink)
        log.write(gr.Prediction(gr.Probability(0.5), MODEL))
        sink.close()
        record = sink_record()
        with pytest.raises(gr.errors.SinkClosedError):
            sink.write(record)
        with capture_events() as events:
            log.write(gr.Prediction(gr.Probability(0.5), MODEL))
        assert (log.written, log.dropped_error) == (1, 1)
        (failed,) = [e for e in events if isinstance(e, gr.instrumentation.DecisionLogFailed)]
        assert "SinkClosedError" in failed.error
        sink.close()
        assert len(path.read_text().splitlines()) == 1

    def test_import_registers_nothing_at_exit(self) -> None:
        """Creating a sink registers no exit handler until the first write."""
        code = (
            "import atexit, guardrail as gr\n"
            "calls = []\n"
            "atexit.register = lambda f, *a, **k: calls.append(f)\n"
            "sink = gr.holdout.JsonLinesSink('/nonexistent/x.jsonl')\n"
            "print(len(calls))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)  # fmt: skip
        assert out.stdout.strip() == "0"

    @pytest.mark.parametrize("kw", [{"max_buffer": 0}, {"flush_every": 0},
                                    {"flush_every": 10, "max_buffer": 5}])  # fmt: skip
    def test_bad_buffer_sizes(self, kw: dict[str, int], tmp_path: Path) -> None:
        """Non-positive sizes, or flush_every above max_buffer, are ConfigErrors."""
        with pytest.raises(gr.ConfigError):
            gr.holdout.JsonLinesSink(tmp_path / "x", **kw)


def sink_record() -> gr.holdout.DecisionRecord:
    """One record, built the way the log builds it."""
    (record,) = gr.DecisionLog(ListSink()).records(gr.Prediction(gr.Probability(0.5), MODEL))
    return record


class TestDecisionRecord:
    def test_to_dict_has_every_field(self) -> None:
        """to_dict names every field of the record."""
        record = gr.holdout.DecisionRecord("a", None, 1.0, "m", "1", 0.5, "probability", None, None,
                                   None, None, None, (), None, "f")  # fmt: skip
        assert set(record.to_dict()) == {a.name for a in gr.holdout.DecisionRecord.__attrs_attrs__}
