"""SkewMonitor: validation, sampling, windows, events, batches and safety."""

from __future__ import annotations

import math
import re
import threading
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import guardrail as gr
from guardrail.mechanisms import Mechanism
from guardrail.testing import capture_events, deterministic, make_call

MODEL = gr.ModelRef(name="fraud", version="1")
COUNTRIES = np.array(["FR", "DE", "US", "GB"], dtype=object)


def reference(rows: int = 20_000) -> gr.Profile:
    rng = np.random.default_rng(0)
    return gr.Profile.from_columns(
        {
            "amount": rng.normal(100.0, 15.0, rows),
            "age": rng.integers(18, 90, rows).astype(float),
            "country": COUNTRIES[rng.integers(0, 4, rows)],
        }
    )


REF = reference()


def rows(n: int, *, seed: int = 1, shift: float = 0.0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    amount = rng.normal(100.0 + shift, 15.0, n).tolist()
    age = rng.integers(18, 90, n).astype(float).tolist()
    country = COUNTRIES[rng.integers(0, 4, n)].tolist()
    return [
        {"amount": a, "age": g, "country": c} for a, g, c in zip(amount, age, country, strict=True)
    ]


GOOD = {"amount": 100.0, "age": 40.0, "country": "FR"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestConfiguration:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"sample": 0},
            {"sample": 1.5},
            {"sample": True},
            {"on_invalid": "ignore"},
            {"checks": ["spelling"]},
            {"every": 0},
            {"seconds": -1},
            {"seconds": float("nan")},
            {"min_samples": 0},
            {"name": ""},
            {"thresholds": {"psi": (0.1, 0.2)}},
            {"per_feature": {"nope": gr.skew.DriftThresholds()}},
            {"clock": 12.0},
        ],
    )
    def test_bad_settings_are_config_errors(self, kwargs: dict[str, Any]) -> None:
        """Each invalid setting raises ConfigError when the monitor is made."""
        with pytest.raises(gr.ConfigError):
            gr.SkewMonitor(reference=REF, **kwargs)

    def test_reference_must_be_a_profile(self) -> None:
        """A reference that is not a non-empty Profile is a ConfigError."""
        with pytest.raises(gr.ConfigError):
            gr.SkewMonitor(reference={"amount": 1})  # type: ignore[arg-type]
        with pytest.raises(gr.ConfigError):
            gr.SkewMonitor(reference=gr.Profile([]))

    def test_is_a_mechanism(self) -> None:
        """The monitor plays the guard's input-monitor role."""
        assert isinstance(gr.SkewMonitor(reference=REF), Mechanism)


class TestValidation:
    @pytest.mark.parametrize(
        ("change", "problem"),
        [
            ({"amount": None}, "missing"),
            ({"amount": "12"}, "type"),
            ({"country": 3}, "type"),
            ({"amount": float("nan")}, "nan_inf"),
            ({"amount": float("inf")}, "nan_inf"),
            ({"amount": 1e9}, "out_of_range"),
            ({"extra": 1.0}, "unexpected"),
        ],
    )
    def test_raise_policy_raises_a_policy_error(self, change: dict[str, Any], problem: str) -> None:
        """Under on_invalid='raise' each problem raises SchemaViolationError, a PolicyError."""
        monitor = gr.SkewMonitor(reference=REF, on_invalid="raise")
        with pytest.raises(gr.errors.SchemaViolationError) as info:
            monitor.observe({**GOOD, **change})
        assert isinstance(info.value, gr.PolicyError)
        assert info.value.problem == problem

    def test_a_missing_key_raises(self) -> None:
        """A row without one of the schema's features raises 'missing'."""
        monitor = gr.SkewMonitor(reference=REF, on_invalid="raise")
        with pytest.raises(gr.errors.SchemaViolationError) as info:
            monitor.observe({"amount": 100.0, "age": 40.0})
        assert (info.value.feature, info.value.problem) == ("country", "missing")

    def test_good_rows_pass(self) -> None:
        """Valid rows, ints and numpy floats included, raise nothing."""
        monitor = gr.SkewMonitor(reference=REF, on_invalid="raise")
        monitor.observe(GOOD)
        monitor.observe({"amount": 100, "age": np.float64(40.0), "country": "ZZ"})

    @pytest.mark.parametrize(
        ("value", "problem"),
        [
            (10**400, "nan_inf"),
            (-(10**400), "nan_inf"),
            (np.complex128(100.0), "type"),
            (complex(100.0), "type"),
            (Decimal("100"), "type"),
        ],
        ids=["huge-int", "huge-negative-int", "numpy-complex", "complex", "decimal"],
    )
    def test_values_that_are_not_real_floats_are_refused(self, value: Any, problem: str) -> None:
        """Under 'raise', an int beyond float range is infinite; complex and Decimal are types."""
        monitor = gr.SkewMonitor(reference=REF, on_invalid="raise")
        with pytest.raises(gr.errors.SchemaViolationError) as info:
            monitor.observe({**GOOD, "amount": value})
        assert (info.value.feature, info.value.problem) == ("amount", problem)
        with pytest.raises(gr.errors.SchemaViolationError, match=f"amount: {problem}"):
            monitor.observe_batch([{**GOOD, "amount": value}])
        assert monitor.errors == 0

    def test_complex_numbers_are_counted_as_wrong_type(self) -> None:
        """Under 'report', a numpy complex value is wrong-typed, not cast to its real part."""
        monitor = gr.SkewMonitor(reference=REF)
        monitor.observe({**GOOD, "amount": np.complex128(100.0)})
        monitor.observe_batch({"amount": [np.complex128(100.0)], "age": [40.0], "country": ["FR"]})
        assert monitor.violations() == {("amount", "type"): 2}
        assert monitor.serving_profile()["amount"].n == 0
        assert monitor.errors == 0

    def test_checks_can_be_narrowed(self) -> None:
        """A problem left out of checks does not raise."""
        monitor = gr.SkewMonitor(
            reference=REF, on_invalid="raise", checks=["missing", "type", "nan_inf"]
        )
        monitor.observe({**GOOD, "amount": 1e9, "extra": 1})
        with pytest.raises(gr.errors.SchemaViolationError):
            monitor.observe({**GOOD, "amount": float("inf")})

    def test_not_a_mapping_raises_under_raise(self) -> None:
        """A row that is not a mapping is a 'type' violation."""
        monitor = gr.SkewMonitor(reference=REF, on_invalid="raise")
        with pytest.raises(gr.errors.SchemaViolationError):
            monitor.observe([1, 2, 3])  # type: ignore[arg-type]

    def test_record_policy_counts_and_never_raises(self) -> None:
        """Under 'report' every problem is counted, none raised."""
        gr.instrumentation.configure(redact=str)  # unexpected names as they are
        monitor = gr.SkewMonitor(reference=REF)
        bad = [
            {"amount": None, "age": 40.0, "country": "FR"},
            {"amount": "x", "age": 40.0, "country": "FR"},
            {"amount": float("nan"), "age": 40.0, "country": 5},
            {"amount": 1e9, "age": 40.0, "country": "FR", "extra": 1},
            {"age": 40.0, "country": "FR"},
            "not a row",
        ]
        for row in bad:
            monitor.observe(row)  # type: ignore[arg-type]
        assert monitor.violations() == {
            ("amount", "missing"): 3,
            ("amount", "type"): 1,
            ("amount", "nan_inf"): 1,
            ("amount", "out_of_range"): 1,
            ("country", "type"): 1,
            ("extra", "unexpected"): 1,
            ("<input>", "missing"): 1,
            ("age", "missing"): 1,
            ("country", "missing"): 1,
        }
        assert monitor.errors == 0

    def test_record_policy_reports_at_the_check(self) -> None:
        """Recorded problems are reported once, as InputsInvalid events."""
        monitor = gr.SkewMonitor(reference=REF)
        with capture_events() as events:
            monitor.observe({**GOOD, "amount": None})
            monitor.check()
            monitor.check()
        invalid = [e for e in events if isinstance(e, gr.instrumentation.InputsInvalid)]
        assert [(e.feature, e.problem, e.count) for e in invalid] == [("amount", "missing", 1)]


class TestSampling:
    def test_sample_rate_is_respected(self) -> None:
        """About sample x rows end up in the serving profile."""
        monitor = gr.SkewMonitor(reference=REF, sample=0.1, seed=3)
        for row in rows(10_000):
            monitor.observe(row)
        assert 850 < monitor.serving_profile().rows < 1_150

    def test_deterministic_sampling_repeats(self) -> None:
        """Under testing.deterministic() two monitors sample the same rows."""
        data = rows(2_000)
        outputs = []
        for _ in range(2):
            with deterministic():
                monitor = gr.SkewMonitor(reference=REF, sample=0.2)
                for row in data:
                    monitor.observe(row)
                outputs.append(monitor.serving_profile().to_json())
        assert outputs[0] == outputs[1]

    def test_deterministic_batch_sampling_repeats(self) -> None:
        """Batch sampling with a seed repeats too."""
        data = rows(2_000)
        outputs = []
        for _ in range(2):
            monitor = gr.SkewMonitor(reference=REF, sample=0.3, seed=7)
            monitor.observe_batch(data)
            outputs.append(monitor.serving_profile().to_json())
        assert outputs[0] == outputs[1]
        assert 500 < gr.Profile.from_json(outputs[0]).rows < 700


class TestChecks:
    def test_skew_is_detected_every_n_samples(self) -> None:
        """A shifted input stream emits SkewDetected once a window is full."""
        monitor = gr.SkewMonitor(reference=REF, every=2_000, seconds=None)
        with capture_events() as events:
            for row in rows(1_999, shift=20.0):
                monitor.observe(row)
            assert events == []
            monitor.observe(rows(1, shift=20.0)[0])
            assert monitor.wait(30)
        skew = [e for e in events if isinstance(e, gr.instrumentation.SkewDetected)]
        assert [(e.feature, e.severity) for e in skew] == [("amount", "alert")]
        assert skew[0].samples == 2_000
        assert skew[0].metric in {"psi", "js", "wasserstein"}
        assert monitor.last_report is not None
        assert monitor.last_report.drifted[0].name == "amount"

    def test_no_event_without_skew(self) -> None:
        """Inputs like the reference give a report and no skew event."""
        monitor = gr.SkewMonitor(reference=REF, every=2_000)
        with capture_events() as events:
            for row in rows(4_000):
                monitor.observe(row)
            assert monitor.wait(30)
        assert events == []
        assert monitor.last_report is not None
        assert monitor.last_report.severity == "ok"

    def test_upstream_failure_when_missing_rate_jumps(self) -> None:
        """A feature gone missing emits UpstreamFailure, an error-level event."""
        monitor = gr.SkewMonitor(reference=REF, every=1_000)
        with capture_events() as events:
            for row in rows(1_000):
                row["age"] = None
                monitor.observe(row)
            assert monitor.wait(30)
        failures = [e for e in events if isinstance(e, gr.instrumentation.UpstreamFailure)]
        assert [(e.feature, e.missing_rate, e.level) for e in failures] == [("age", 1.0, "error")]

    def test_a_missing_rate_warning_is_a_skew_event(self) -> None:
        """A missing rate up by a warning's worth (short of an alert) emits SkewDetected for it."""
        monitor = gr.SkewMonitor(reference=REF, every=1_000, seconds=None)
        with capture_events() as events:
            for i, row in enumerate(rows(1_000)):
                if i % 10 == 0:
                    row["age"] = None
                monitor.observe(row)
            assert monitor.wait(30)
        skew = [e for e in events if isinstance(e, gr.instrumentation.SkewDetected)]
        assert [(e.feature, e.metric, e.severity) for e in skew] == [
            ("age", "missing_rate_change", "warn")
        ]
        assert skew[0].value == pytest.approx(0.1)
        assert not [e for e in events if isinstance(e, gr.instrumentation.UpstreamFailure)]

    def test_a_window_is_checked_on_time(self) -> None:
        """After `seconds` on the monitor's clock, the next sampled call runs the check."""
        clock = Clock()
        monitor = gr.SkewMonitor(
            reference=REF, every=10**6, seconds=60, min_samples=10, clock=clock
        )
        for row in rows(50):
            monitor.observe(row)
        clock.now += 59.9
        monitor.observe(GOOD)
        assert monitor.last_report is None
        clock.now += 0.1
        monitor.observe(GOOD)
        assert monitor.wait(30)
        assert monitor.last_report is not None
        assert monitor.last_report.serving_rows == 52

    def test_windows_roll_and_the_total_keeps_everything(self) -> None:
        """Each check starts a new window; serving_profile() holds every sample."""
        monitor = gr.SkewMonitor(reference=REF, every=500, seconds=None)
        for row in rows(1_700):
            monitor.observe(row)
        assert monitor.wait(30)
        assert monitor.last_report is not None
        assert monitor.last_report.serving_rows == 500
        assert monitor.serving_profile().rows == 1_700

    def test_serving_profile_exports_and_merges_across_replicas(self) -> None:
        """Two replicas' exported profiles merge into one fleet profile."""
        replicas = [gr.SkewMonitor(reference=REF) for _ in range(2)]
        for i, monitor in enumerate(replicas):
            for row in rows(300, seed=i):
                monitor.observe(row)
        texts = [m.serving_profile().to_json() for m in replicas]
        fleet = gr.Profile.from_json(texts[0]).merge(gr.Profile.from_json(texts[1]))
        assert fleet.rows == 600
        assert gr.compare(REF, fleet).severity == "ok"

    def test_check_on_an_empty_window(self) -> None:
        """check() with nothing sampled returns None."""
        assert gr.SkewMonitor(reference=REF).check() is None


class TestBatches:
    def test_array_rows_and_columns_profile_alike(self) -> None:
        """A 2-D array, row mappings and columns give the same serving profile."""
        data = rows(3_000)
        array = np.array([[r["amount"], r["age"], r["country"]] for r in data], dtype=object)
        columns = {name: [r[name] for r in data] for name in ("amount", "age", "country")}
        outputs = []
        for batch in (array, data, columns):
            monitor = gr.SkewMonitor(reference=REF)
            monitor.observe_batch(batch)
            outputs.append(monitor.serving_profile().to_json())
        assert outputs[0] == outputs[1] == outputs[2]

    def test_rows_as_sequences_profile_like_an_array(self) -> None:
        """Lists, tuples and 1-D arrays of values in the schema's order are rows, as in an array."""
        values = [[r["amount"], r["age"], r["country"]] for r in rows(500)]
        array = np.array(values, dtype=object)
        outputs = []
        for batch in (array, values, [tuple(v) for v in values], list(array)):
            monitor = gr.SkewMonitor(reference=REF)
            monitor.observe_batch(batch)
            outputs.append(monitor.serving_profile().to_json())
        assert len(set(outputs)) == 1
        assert gr.Profile.from_json(outputs[0]).rows == 500
        assert monitor.violations() == {}

    def test_rows_as_sequences_are_validated(self) -> None:
        """Under 'raise', a bad value or a short row in a list of rows is a violation."""
        monitor = gr.SkewMonitor(reference=REF, on_invalid="raise")
        monitor.observe_batch([[100.0, 40.0, "FR"], (90.0, 30.0, "DE")])
        with pytest.raises(gr.errors.SchemaViolationError, match="amount: nan_inf"):
            monitor.observe_batch([[100.0, 40.0, "FR"], [float("nan"), 40.0, "FR"]])
        with pytest.raises(gr.errors.SchemaViolationError, match="<columns>: missing"):
            monitor.observe_batch([[100.0, 40.0, "FR"], [100.0, 40.0]])
        with pytest.raises(gr.errors.SchemaViolationError, match="<columns>: type"):
            monitor.observe_batch([[100.0, 40.0, "FR"], "not a row"])
        assert monitor.serving_profile().rows == 2
        assert monitor.errors == 0

    def test_a_numeric_array_counts_categorical_columns_invalid(self) -> None:
        """A float array for a schema with a string feature counts it as wrong-typed."""
        monitor = gr.SkewMonitor(reference=REF)
        monitor.observe_batch(np.zeros((10, 3)))
        assert monitor.violations()[("country", "type")] == 10

    def test_empty_batches_do_nothing(self) -> None:
        """Empty batches of every form are accepted and change nothing."""
        monitor = gr.SkewMonitor(reference=REF, on_invalid="raise")
        for batch in ([], np.zeros((0, 3)), {"amount": [], "age": [], "country": []}):
            monitor.observe_batch(batch)
        assert monitor.serving_profile().rows == 0

    def test_raise_policy_checks_batches(self) -> None:
        """Under 'raise' a batch with a bad value raises SchemaViolationError."""
        monitor = gr.SkewMonitor(reference=REF, on_invalid="raise")
        monitor.observe_batch(rows(100))
        bad = rows(100)
        bad[50]["amount"] = float("nan")
        with pytest.raises(gr.errors.SchemaViolationError, match="nan_inf"):
            monitor.observe_batch(bad)
        with pytest.raises(gr.errors.SchemaViolationError):
            monitor.observe_batch(np.zeros((4, 2)))
        with pytest.raises(gr.errors.SchemaViolationError, match="unexpected"):
            monitor.observe_batch([{**GOOD, "extra": 1}])
        with pytest.raises(gr.errors.SchemaViolationError, match="missing"):
            monitor.observe_batch({"amount": [1.0], "age": [20.0]})

    def test_a_column_of_rows_is_a_violation_never_another_error(self) -> None:
        """Under 'raise', a 2-D column is a 'type' violation; unchecked, it is a machinery error."""
        batch = {
            "amount": np.ones((3, 2)),
            "age": np.full(3, 40.0),
            "country": np.array(["FR"] * 3, dtype=object),
        }
        monitor = gr.SkewMonitor(reference=REF, on_invalid="raise")
        with pytest.raises(gr.errors.SchemaViolationError) as info:
            monitor.observe_batch(batch)
        assert info.value.violations == (("amount", "type"),)
        unchecked = gr.SkewMonitor(reference=REF, on_invalid="raise", checks=["missing"])
        with capture_events() as events:
            unchecked.observe_batch(batch)
        assert unchecked.errors == 1
        assert [e.kind for e in events] == ["machinery.error"]

    def test_a_batch_of_a_wrong_kind_is_counted_not_raised(self) -> None:
        """An unusable batch is a machinery error: counted, reported, not raised."""
        monitor = gr.SkewMonitor(reference=REF)
        with capture_events() as events:
            monitor.observe_batch(42)
        assert monitor.errors == 1
        assert [e.kind for e in events] == ["machinery.error"]


class TestPandas:
    def test_a_data_frame_is_a_batch_of_columns(self) -> None:
        """A DataFrame, given directly or as a guard's input, profiles like its columns."""
        pd = pytest.importorskip("pandas")
        data = rows(300)
        columns = {name: [r[name] for r in data] for name in ("amount", "age", "country")}
        expected = gr.SkewMonitor(reference=REF)
        expected.observe_batch(columns)
        direct = gr.SkewMonitor(reference=REF)
        direct.observe_batch(pd.DataFrame(data))
        guarded = gr.SkewMonitor(reference=REF)

        @gr.guard(model=MODEL, returns=gr.Probability, inputs=guarded, name="skew-frame")
        def predict(frame: Any) -> Any:
            return np.full(len(frame), 0.5)

        predict(pd.DataFrame(data))
        profiles = {m.serving_profile().to_json() for m in (expected, direct, guarded)}
        assert len(profiles) == 1
        assert guarded.serving_profile().rows == 300
        assert guarded.errors == direct.errors == 0

    def test_missing_values_in_a_data_frame(self) -> None:
        """NA in nullable and string columns is a missing value, raised or counted by policy."""
        pd = pytest.importorskip("pandas")
        frame = pd.DataFrame(
            {
                "amount": pd.array([100, None], dtype="Int64"),
                "age": [40.0, 41.0],
                "country": pd.array(["FR", None], dtype="string"),
            }
        )
        strict = gr.SkewMonitor(reference=REF, on_invalid="raise")
        with pytest.raises(gr.errors.SchemaViolationError) as info:
            strict.observe_batch(frame)
        assert info.value.violations == (("amount", "missing"), ("country", "missing"))
        recorded = gr.SkewMonitor(reference=REF)
        recorded.observe_batch(frame)
        assert recorded.violations() == {("amount", "missing"): 1, ("country", "missing"): 1}
        assert recorded.errors == 0


class _ThreadNames:
    def __init__(self) -> None:
        self.names: list[str] = []

    def emit(self, event: gr.instrumentation.Event) -> None:
        if isinstance(event, gr.instrumentation.SkewDetected):
            self.names.append(threading.current_thread().name)


class TestBackgroundChecks:
    def test_a_due_check_runs_off_the_calling_thread(self) -> None:
        """The call that fills the current profile returns; the comparison runs on the worker."""
        hook = _ThreadNames()
        gr.configure(hooks=[hook])
        try:
            monitor = gr.SkewMonitor(reference=REF, every=500, seconds=None)
            for row in rows(500, shift=20.0):
                monitor.observe(row)
            assert monitor.wait(30)
        finally:
            gr.configure(hooks=None)
        assert hook.names == ["guardrail-checks"]
        assert monitor.last_report is not None

    def test_checks_run_in_the_call_when_asked_or_deterministic(self) -> None:
        """background=False, or deterministic(), compare in the calling thread."""
        hook = _ThreadNames()
        gr.configure(hooks=[hook])
        try:
            inline = gr.SkewMonitor(reference=REF, every=500, seconds=None, background=False)
            for row in rows(500, shift=20.0):
                inline.observe(row)
            with deterministic():
                background = gr.SkewMonitor(reference=REF, every=500, seconds=None)
                for row in rows(500, shift=20.0):
                    background.observe(row)
        finally:
            gr.configure(hooks=None)
        here = threading.current_thread().name
        assert hook.names == [here, here]

    def test_check_is_synchronous(self) -> None:
        """An explicit check() compares now and returns the report."""
        monitor = gr.SkewMonitor(reference=REF, every=10_000)
        for row in rows(300, shift=20.0):
            monitor.observe(row)
        report = monitor.check()
        assert report is not None
        assert report.severity == "alert"

    def test_importing_starts_no_thread(self) -> None:
        """Importing guardrail and making a monitor start no thread; the first check does."""
        import subprocess
        import sys

        code = (
            "import threading, numpy as np, guardrail as gr\n"
            "ref = gr.Profile.from_columns({'x': np.arange(100.0)})\n"
            "m = gr.SkewMonitor(reference=ref, every=10, seconds=None)\n"
            "before = [t.name for t in threading.enumerate()]\n"
            "for i in range(10): m.observe({'x': float(i)})\n"
            "m.wait(30)\n"
            "print(before, [t.name for t in threading.enumerate()])\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip().splitlines()[-1] == "['MainThread'] ['MainThread', 'guardrail-checks']"

    @pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
    def test_a_forked_child_gets_its_own_worker(self) -> None:
        """After fork, the child's first due check starts a new worker and completes."""
        import os

        monitor = gr.SkewMonitor(reference=REF, every=200, seconds=None)
        for row in rows(200):
            monitor.observe(row)
        assert monitor.wait(30)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit status
            try:
                monitor.last_report = None
                for row in rows(200):
                    monitor.observe(row)
                ok = monitor.wait(30) and monitor.last_report is not None
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


class TestSafety:
    def test_a_failing_hook_never_reaches_the_caller(self) -> None:
        """Events go through hooks that may fail; observe still returns."""

        class Broken:
            def emit(self, event: gr.instrumentation.Event) -> None:
                raise RuntimeError("sink down")

        gr.configure(hooks=[Broken()])
        monitor = gr.SkewMonitor(reference=REF, every=100)
        for row in rows(300, shift=30.0):
            monitor.observe(row)
        assert monitor.wait(30)
        assert monitor.last_report is not None

    def test_weird_values_never_raise_under_record(self) -> None:
        """Objects, bytes, nested values and huge ints are counted, not raised."""
        monitor = gr.SkewMonitor(reference=REF, every=5)
        for value in (object(), b"x", [1], {"a": 1}, 10**400, -(10**400), True):
            monitor.observe({"amount": value, "age": value, "country": value})
        monitor.check()
        assert monitor.errors == 0

    def test_unexpected_names_keep_memory_bounded(self) -> None:
        """Thousands of new column names share one '<other>' counter, in rows and batches."""
        monitor = gr.SkewMonitor(reference=REF)
        columns = {"amount": [100.0], "age": [40.0], "country": ["FR"]}
        tracemalloc.start()
        try:
            for i in range(200):
                monitor.observe_batch({**columns, f"batch{i}": [1.0]})
            before = tracemalloc.get_traced_memory()[0]
            # 5,000 more new names (batches are the slow path under tracemalloc: fewer).
            for i in range(200, 1_200):
                monitor.observe_batch({**columns, f"batch{i}": [1.0]})
            for i in range(4_000):
                monitor.observe({**GOOD, f"row{i}": 1.0})
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert grown < 100_000  # 20 bytes a name would already be over
        unexpected = {n: c for (n, p), c in monitor.violations().items() if p == "unexpected"}
        assert len(unexpected) == 65
        assert sum(unexpected.values()) == 5_200
        assert unexpected["<other>"] == 5_200 - 64
        assert monitor.errors == 0

    def test_concurrent_observers_lose_no_rows(self) -> None:
        """Rows observed from several threads all reach the profile."""
        monitor = gr.SkewMonitor(reference=REF, every=700)
        data = rows(2_000)

        def work() -> None:
            for row in data:
                monitor.observe(row)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert monitor.serving_profile().rows == 8_000
        assert monitor.errors == 0


class TestMechanism:
    def test_before_reads_a_row_or_a_batch(self) -> None:
        """observe_call(call) takes call.inputs as a row or a batch."""
        monitor = gr.SkewMonitor(reference=REF)
        assert isinstance(monitor, gr.mechanisms.InputMonitor)
        assert not isinstance(
            monitor, (gr.mechanisms.Decider, gr.mechanisms.Limiter, gr.mechanisms.Recorder)
        )
        monitor.observe_call(make_call(GOOD))
        call = make_call(rows(10))
        monitor.observe_call(call)
        assert monitor.serving_profile().rows == 11
        assert call.act is None

    def test_before_raises_only_the_policy_error(self) -> None:
        """Under 'raise', observe_call() raises SchemaViolationError for a bad row."""
        monitor = gr.SkewMonitor(reference=REF, on_invalid="raise")
        with pytest.raises(gr.errors.SchemaViolationError):
            monitor.observe_call(make_call({**GOOD, "age": None}))


class TestInGuard:
    def test_rows_and_batches_reach_the_monitor(self) -> None:
        """A guard passes each row, 2-D array and list of rows (mappings or values) to it."""
        monitor = gr.SkewMonitor(reference=REF)

        @gr.guard(model=MODEL, returns=gr.Probability, inputs=monitor, name="skew-rows")
        def predict(inputs: Any) -> Any:
            if isinstance(inputs, np.ndarray):
                return np.full(len(inputs), 0.5)
            if isinstance(inputs, list):
                return [0.5] * len(inputs)
            return 0.5

        assert predict(GOOD).value == gr.Probability(0.5)
        array = np.array([[100.0, 40.0, "FR"]] * 4, dtype=object)
        predict(array)
        predict(rows(10))
        predict([[100.0, 40.0, "FR"], (90.0, 30.0, "DE")])
        assert monitor.serving_profile().rows == 17
        assert monitor.violations() == {}

    def test_schema_violation_stops_the_call(self) -> None:
        """Under on_invalid='raise' the guarded call raises before the model runs."""
        monitor = gr.SkewMonitor(reference=REF, on_invalid="raise")
        called = []

        @gr.guard(model=MODEL, returns=gr.Probability, inputs=monitor, name="skew-raise")
        def predict(row: dict[str, Any]) -> float:
            called.append(row)
            return 0.5

        predict(GOOD)
        with pytest.raises(gr.errors.SchemaViolationError):
            predict({**GOOD, "amount": float("nan")})
        assert len(called) == 1

    def test_drift_through_a_guard_emits_skew_events(self) -> None:
        """Shifted inputs through a guarded function raise SkewDetected, predictions unchanged."""
        monitor = gr.SkewMonitor(reference=REF, every=1_000, seconds=None)

        @gr.guard(model=MODEL, returns=gr.Probability, inputs=monitor, name="skew-events")
        def predict(row: dict[str, Any]) -> float:
            return 0.25

        with capture_events() as events:
            values = {predict(row).value.value for row in rows(1_000, shift=25.0)}
            assert monitor.wait(30)
        assert values == {0.25}
        assert [e.feature for e in events if isinstance(e, gr.instrumentation.SkewDetected)] == [
            "amount"
        ]

    def test_the_guard_configuration_describes_the_monitor(self) -> None:
        """The guard's configuration shows the monitor's settings and reference schema."""
        monitor = gr.SkewMonitor(reference=REF, sample=0.5, name="inputs")
        config = gr.GuardConfig(model=MODEL, returns=gr.Probability, inputs=monitor)
        described = config.to_dict()["mechanisms"][0]
        assert described["type"] == "SkewMonitor"
        assert described["settings"]["reference_schema"] == REF.schema.fingerprint
        assert described["settings"]["sample"] == 0.5


class TestLifetimeBudget:
    def test_spending_sums_within_the_budget(self) -> None:
        """The shares of a lifetime budget that checks spend add up to at most 1."""
        from guardrail._skew import spend

        assert spend(1) == 0.5
        assert sum(spend(k) for k in range(1, 200_000)) < 1.0

    def test_a_stable_stream_rarely_ever_warns(self) -> None:
        """Of 40 monitors checking a stable stream 40 times each, about budget-many ever warn."""
        rng = np.random.default_rng(11)
        reference = gr.Profile.from_columns({"x": rng.normal(size=5_000)})
        levels = gr.skew.DriftThresholds(false_alarm=(0.2, 0.05))
        ever = {"lifetime": 0, "check": 0}
        for budget in ever:
            for _ in range(40):
                monitor = gr.SkewMonitor(
                    reference=reference,
                    every=100,
                    seconds=None,
                    thresholds=levels,
                    budget=budget,  # type: ignore[arg-type]
                    background=False,
                )
                warned = False
                for _ in range(40):
                    monitor.observe_batch({"x": rng.normal(size=100)})
                    assert monitor.last_report is not None
                    warned |= monitor.last_report.severity != "ok"
                ever[budget] += warned
        # A lifetime budget of 20 % over 40 monitors: 8 expected at most, 3 SE above is 15.
        assert ever["lifetime"] <= 15
        # Per-check levels over 40 checks warn in most monitors (what the budget prevents).
        assert ever["check"] > ever["lifetime"]

    def test_the_budget_is_validated_and_described(self) -> None:
        """budget is "lifetime" or "check" and shows in the monitor's settings."""
        with pytest.raises(gr.errors.ConfigError, match="budget"):
            gr.SkewMonitor(reference=REF, budget="forever")  # type: ignore[arg-type]
        assert gr.SkewMonitor(reference=REF).to_dict()["budget"] == "lifetime"


class TestSamplingAwareProblems:
    def test_values_beyond_the_reference_range_by_chance_are_not_reported(self) -> None:
        """A stream like the reference, a few values past its extremes, emits no out_of_range."""
        rng = np.random.default_rng(2)
        reference = gr.Profile.from_columns({"x": rng.normal(size=500)})
        monitor = gr.SkewMonitor(reference=reference, every=2_000, background=False)
        with capture_events() as events:
            monitor.observe_batch({"x": rng.normal(size=2_000)})
        assert monitor.violations().get(("x", "out_of_range"), 0) > 0
        assert not [e for e in events if isinstance(e, gr.instrumentation.InputsInvalid)]

    def test_many_values_beyond_the_range_are_reported(self) -> None:
        """A tenth of the values past the reference's maximum is an out_of_range problem."""
        rng = np.random.default_rng(2)
        reference = gr.Profile.from_columns({"x": rng.normal(size=500)})
        monitor = gr.SkewMonitor(reference=reference, every=2_000, background=False)
        values = rng.normal(size=2_000)
        values[::10] = 50.0
        with capture_events() as events:
            monitor.observe_batch({"x": values})
        problems = [e.problem for e in events if isinstance(e, gr.instrumentation.InputsInvalid)]
        assert problems == ["out_of_range"]


class TestAutomaticCadence:
    def test_a_sampled_monitor_checks_within_thousands_of_requests(self) -> None:
        """At 5 % sampling the first check comes within five thousand requests."""
        monitor = gr.SkewMonitor(reference=REF, sample=0.05, seed=4, background=False)
        assert 100 <= monitor.every < 1_000
        requests = 0
        for row in rows(20_000):
            monitor.observe(row)
            requests += 1
            if monitor.last_report is not None:
                break
        assert monitor.last_report is not None
        assert requests < 5_000
        assert monitor.last_report.severity == "ok"
        assert monitor.last_report.verdict == "insufficient"  # the warning floor needs more

    def test_later_checks_need_a_little_more(self) -> None:
        """The first check needs the alert floor's rows, later ones more each time."""
        monitor = gr.SkewMonitor(reference=REF, seconds=None, background=False)
        first = monitor.every
        monitor.observe_batch(rows(first))
        assert monitor.checks_run == 1
        second = monitor.every
        assert 2 * first < second < 4 * first
        monitor.observe_batch(rows(second))
        assert monitor.checks_run == 2
        assert second < monitor.every < 2 * second

    def test_an_explicit_size_is_kept(self) -> None:
        """every=N checks at exactly N rows, whatever the evidence needs."""
        monitor = gr.SkewMonitor(reference=REF, every=50, seconds=None, background=False)
        monitor.observe_batch(rows(50))
        assert monitor.every == 50
        assert monitor.last_report is not None
        assert monitor.last_report.verdict == "insufficient"


def readme_reference() -> gr.Profile:
    """The reference of the README's example, built as the README builds it."""
    rng = np.random.default_rng(0)
    return gr.Profile.from_columns(
        {
            "amount": rng.lognormal(4.0, 1.0, 5_000),
            "merchant": rng.choice(["m-01", "m-02", "m-03"], 5_000),
        }
    )


class TestSaysWhatItDoes:
    def test_the_readme_monitor_checks_within_the_calls_it_states(self) -> None:
        """The README's monitor first checks after the rows and calls the README states."""
        readme = (Path(__file__).parents[1] / "README.md").read_text()
        assert "inputs=gr.SkewMonitor(reference=ref, sample=0.05)" in readme
        stated = re.search(
            r"runs once (\d+)\s+sampled rows are in.*?after about ([\d,]+) calls", readme, re.S
        )
        assert stated is not None
        rows_stated, calls_stated = int(stated[1]), int(stated[2].replace(",", ""))
        ref = readme_reference()
        counts = []
        for seed in range(20):
            monitor = gr.SkewMonitor(reference=ref, sample=0.05, seed=seed, background=False)
            assert monitor.every == rows_stated
            rng = np.random.default_rng(100 + seed)
            amounts = rng.lognormal(4.0, 1.0, 10_000).tolist()
            calls = 0
            for amount in amounts:
                monitor.observe({"amount": amount, "merchant": "m-01"})
                calls += 1
                if monitor.checks_run:
                    break
            counts.append(calls)
        assert abs(float(np.median(counts)) - calls_stated) < 0.05 * calls_stated
        assert max(counts) < 5_000

    def test_a_far_first_check_is_announced_once(self) -> None:
        """At 0.5 % sampling the first check is far away: one event says so."""
        monitor = gr.SkewMonitor(reference=REF, sample=0.005, seed=1, background=False)
        with capture_events() as events:
            for row in rows(300):
                monitor.observe(row)
        delayed = [e for e in events if isinstance(e, gr.instrumentation.SkewCheckDelayed)]
        assert len(delayed) == 1
        assert delayed[0].reason == "sampling"
        assert delayed[0].calls == math.ceil(monitor.every / 0.005) > 10_000
        assert delayed[0].source.name == "skew"

    def test_the_notice_is_in_the_report(self) -> None:
        """The reports of a monitor with a far first check carry the notice as a note."""
        monitor = gr.SkewMonitor(reference=REF, sample=0.005, seed=1, background=False)
        monitor.observe_batch(rows(2_000))
        report = monitor.check()
        assert report is not None
        assert report.notes
        assert "first check comes after about" in report.notes[0]
        assert "note: the first check comes after about" in report.to_text()
        assert report.to_dict()["notes"] == list(report.notes)

    def test_a_monitor_that_checks_soon_says_nothing(self) -> None:
        """Sampling every call, the first check is close: no event, no note."""
        monitor = gr.SkewMonitor(reference=REF, background=False)
        with capture_events() as events:
            monitor.observe_batch(rows(monitor.every))
        assert not [e for e in events if isinstance(e, gr.instrumentation.SkewCheckDelayed)]
        assert monitor.last_report is not None
        assert monitor.last_report.notes == ()

    def test_checks_too_small_to_decide_are_announced(self) -> None:
        """every=N below the rows the warning levels need: the monitor says so."""
        monitor = gr.SkewMonitor(reference=REF, every=50, seconds=None, background=False)
        with capture_events() as events:
            monitor.observe_batch(rows(50))
        delayed = [e for e in events if isinstance(e, gr.instrumentation.SkewCheckDelayed)]
        assert [e.reason for e in delayed] == ["small_checks"]
        assert delayed[0].rows == 50

    def test_a_reference_too_small_is_announced(self) -> None:
        """A reference too small for any check to show drift: calls is -1."""
        tiny = gr.Profile.from_columns({"x": np.random.default_rng(0).normal(size=30)})
        monitor = gr.SkewMonitor(reference=tiny, background=False)
        with capture_events() as events:
            monitor.observe({"x": 0.0})
        delayed = [e for e in events if isinstance(e, gr.instrumentation.SkewCheckDelayed)]
        assert [(e.reason, e.calls) for e in delayed] == [("small_reference", -1)]


def _split_rows(name: str, seed: int) -> tuple[gr.Profile, list[dict[str, float]]]:
    """A reference from a random half of a bundled data set, and the other half as rows."""
    from sklearn import datasets

    data = np.asarray(getattr(datasets, f"load_{name}")().data, dtype=float)
    names = [f"x{j}" for j in range(data.shape[1])]
    order = np.random.default_rng(seed).permutation(len(data))
    half = len(data) // 2
    reference = gr.Profile.from_array(data[order[:half]], names=names)
    rows = [dict(zip(names, row, strict=True)) for row in data[order[half:]].tolist()]
    return reference, rows


def _refused(monitor: gr.SkewMonitor, rows: list[dict[str, Any]]) -> int:
    refused = 0
    for row in rows:
        try:
            monitor.observe(row)
        except gr.errors.SchemaViolationError:
            refused += 1
    return refused


class TestRowChecksKnowSampling:
    @pytest.mark.parametrize("name", ["iris", "wine", "diabetes", "breast_cancer"])
    def test_legitimate_rows_of_small_data_sets_pass(self, name: str) -> None:
        """Rows of the held-out half are refused at about the stated 1 %, not the old 4-24 %."""
        pytest.importorskip("sklearn")
        refused = exact = total = 0
        for seed in range(10):
            reference, rows = _split_rows(name, seed)
            monitor = gr.SkewMonitor(reference=reference, on_invalid="raise", background=False)
            strict = gr.SkewMonitor(
                reference=reference, on_invalid="raise", range_tolerance=None, background=False
            )
            refused += _refused(monitor, rows)
            exact += _refused(strict, rows)
            total += len(rows)
        assert refused / total <= 0.02  # stated 1 %; heavier tails than exponential cost a bit more
        assert exact / total >= 0.04  # the observed range alone refuses many more
        assert refused < exact / 2

    def test_gross_violations_still_raise(self) -> None:
        """A value ten ranges beyond the reference, or an infinity, is still refused."""
        pytest.importorskip("sklearn")
        reference, rows = _split_rows("iris", 0)
        monitor = gr.SkewMonitor(reference=reference, on_invalid="raise", background=False)
        low, high = monitor.row_ranges["x0"]
        bad = dict(rows[0], x0=high + 10 * (high - low))
        with pytest.raises(gr.errors.SchemaViolationError, match="out_of_range"):
            monitor.observe(bad)
        with pytest.raises(gr.errors.SchemaViolationError, match="nan_inf"):
            monitor.observe(dict(rows[0], x0=float("inf")))
        with pytest.raises(gr.errors.SchemaViolationError, match="out_of_range"):
            monitor.observe_batch({k: [v, -1e6] for k, v in rows[0].items()})

    def test_the_range_widens_less_for_a_larger_reference(self) -> None:
        """Small references get a margin past their extremes; large ones keep the observed range."""
        rng = np.random.default_rng(3)
        margins = []
        for n in (50, 150, 100_000):
            ref = gr.Profile.from_columns({"x": rng.normal(size=n)})
            monitor = gr.SkewMonitor(reference=ref, on_invalid="raise")
            feature = ref["x"]
            assert isinstance(feature, gr.skew.NumericProfile)
            margins.append(monitor.row_ranges["x"][1] - feature.max)
        # One feature, 1 %: 0.5 % per side; past 200 rows 1 / (n + 1) is already below it.
        assert margins[0] > margins[1] > 0
        assert margins[2] == 0

    def test_missing_values_pass_where_training_had_them(self) -> None:
        """None and NaN pass in a feature missing in training; elsewhere they are refused."""
        rng = np.random.default_rng(4)
        values = rng.normal(size=500)
        holes = [None if i % 10 == 0 else float(v) for i, v in enumerate(values)]
        ref = gr.Profile.from_columns({"sparse": holes, "full": values})
        monitor = gr.SkewMonitor(reference=ref, on_invalid="raise", background=False)
        assert monitor.may_be_missing == {"sparse"}
        monitor.observe({"sparse": None, "full": 0.0})
        monitor.observe({"sparse": float("nan"), "full": 0.0})
        monitor.observe_batch({"sparse": [None, float("nan")], "full": [0.0, 0.1]})
        with pytest.raises(gr.errors.SchemaViolationError, match="full: missing"):
            monitor.observe({"sparse": 0.0, "full": None})
        with pytest.raises(gr.errors.SchemaViolationError, match="nan_inf"):
            monitor.observe({"sparse": float("inf"), "full": 0.0})
        strict = gr.SkewMonitor(reference=ref, on_invalid="raise", allow_missing=False)
        with pytest.raises(gr.errors.SchemaViolationError, match="sparse: missing"):
            strict.observe({"sparse": None, "full": 0.0})

    def test_a_bad_tolerance_is_refused(self) -> None:
        """range_tolerance is a probability in (0, 1) or None."""
        for bad in (0, 1, -0.1, True, "0.01"):
            with pytest.raises(gr.errors.ConfigError, match="range_tolerance"):
                gr.SkewMonitor(reference=REF, range_tolerance=bad)  # type: ignore[arg-type]
