"""The reproducing inputs of bad-input failures, kept as regression tests."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import guardrail as gr
from guardrail._app.cli import EXIT_INPUT, EXIT_OK, EXIT_USAGE, main
from guardrail.errors import ConfigError, FormatError
from guardrail.skew import compare
from guardrail.thresholds import DynamicThreshold

MODEL = gr.ModelRef(name="fraud", version="1")
FLOAT_MAX = sys.float_info.max


def config() -> dict[str, object]:
    threshold = gr.Threshold(0.9, scale=gr.Probability, model=MODEL)
    return gr.GuardConfig(model=MODEL, returns=gr.Probability, threshold=threshold).to_dict()


def npy_with_header(path: Path, header: str, data: bytes = b"") -> str:
    """A version-1 .npy file with *header* as its header dict, padded as numpy pads it."""
    text = header + " " * (-(len(header) + 11) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode() + data)
    return str(path)


class TestCliNeverTracebacks:
    @pytest.mark.parametrize(
        "header",
        [
            "{'descr': '<f8', 'fortran_order': False, 'shape': (10**12, 10**12), }",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2**62, 4), }",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (-1, 3), }",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (3, \x00",
            "{'descr': '<f8', 'fortran_order': False, 'shape': ((((((((",
            "{'descr': 'O', 'fortran_order': False, 'shape': (1,), }",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 1000000000), }",
            "not a dict at all",
        ],
    )
    def test_npy_headers(
        self, header: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A .npy file with a bad or huge-shaped header is an input error in one line."""
        path = npy_with_header(tmp_path / "x.npy", header, b"\x00" * 64)
        assert main(["profile", path, "-o", str(tmp_path / "p.json")]) == EXIT_INPUT
        err = capsys.readouterr().err
        assert err.startswith("guardrail: error: ")
        assert err.count("\n") == 1

    def test_integer_of_thousands_of_digits(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A JSON integer of over 4,300 digits is malformed input, not a crash."""
        path = tmp_path / "a.json"
        path.write_text('{"format": "guardrail.profile", "version": ' + "9" * 5_000 + "}")
        assert main(["diff", str(path), str(path)]) == EXIT_INPUT
        assert main(["compare", str(path), str(path)]) == EXIT_INPUT
        assert "Traceback" not in capsys.readouterr().err

    def test_returns_a_list(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A configuration whose "returns" is a list is refused as malformed."""
        path = tmp_path / "c.json"
        path.write_text(json.dumps({**config(), "returns": []}))
        assert main(["diff", str(path), str(path)]) == EXIT_INPUT
        assert "unknown scale []" in capsys.readouterr().err

    def test_demo_with_too_few_requests(self, capsys: pytest.CaptureFixture[str]) -> None:
        """guardrail demo --requests 99 is a usage error in one line."""
        with pytest.raises(SystemExit) as exit_:
            main(["demo", "--requests", "99"])
        assert exit_.value.code == EXIT_USAGE
        err = capsys.readouterr().err
        assert err.count("\n") <= 2  # argparse's usage line and the error
        assert "at least 100, got 99" in err

    def test_demo_with_a_negative_seed(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A negative --seed is a usage error, not numpy's traceback."""
        assert main(["demo", "--seed", "-1"]) == EXIT_USAGE
        assert "--seed: must be 0 or more" in capsys.readouterr().err

    def test_diff_of_a_file_holding_nan(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A configuration holding NaN equals itself: diff a a reports no change."""
        doc = config()
        doc["mechanisms"][0]["settings"]["value"] = math.nan  # type: ignore[index]
        path = tmp_path / "a.json"
        path.write_text(json.dumps(doc))
        assert main(["diff", str(path), str(path)]) == EXIT_OK
        assert capsys.readouterr().out == "no changes\n"

    def test_npy_names_given_twice(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--names naming a column twice is an input error, not a silently dropped column."""
        np.save(tmp_path / "x.npy", np.ones((3, 2)))
        argv = ["profile", str(tmp_path / "x.npy"), "--names", "a,a", "-o", str(tmp_path / "p")]
        assert main(argv) == EXIT_INPUT
        assert "name a column twice" in capsys.readouterr().err

    def test_demo_report_unwritable(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A demo report that cannot be written is an output error in one line."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        argv = ["demo", "--requests", "1000", "--report", str(blocker / "r.html")]
        assert main(argv) == 4
        last = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
        assert last.startswith("guardrail: error: ")
        assert last.endswith("cannot write: File exists")

    def test_unexpected_failure_is_one_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A bug inside a command is one line and status 70, never a traceback."""
        from guardrail._app import files

        def broken(*args: object, **kwargs: object) -> object:
            raise TypeError("a bug")

        monkeypatch.setattr(files, "read_data", broken)
        path = tmp_path / "x.csv"
        path.write_text("a\n1\n")
        assert main(["profile", str(path), "-o", str(tmp_path / "p.json")]) == 70
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "internal error (TypeError in guardrail profile)" in err

    def test_no_traceback_from_a_real_process(self, tmp_path: Path) -> None:
        """The installed command prints one line for a huge-shaped .npy file."""
        path = npy_with_header(
            tmp_path / "x.npy",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000000,), }",
        )
        done = subprocess.run(
            [sys.executable, "-m", "guardrail", "profile", path, "-o", str(tmp_path / "p.json")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == EXIT_INPUT
        assert done.stderr.count("\n") == 1
        assert "declares 8,000,000,000,000,000 bytes of data" in done.stderr


class TestLoadersRaiseTyped:
    def test_huge_step(self) -> None:
        """DynamicThreshold(step=5000) on the log-odds scale is a ConfigError."""
        with pytest.raises(ConfigError, match="step must be at most 700"):
            DynamicThreshold(target_rate=0.1, initial=gr.Probability(0.5), step=5000)

    def test_integer_step_beyond_floats(self) -> None:
        """A step too large for a float is a ConfigError, not an OverflowError."""
        with pytest.raises(ConfigError, match="finite"):
            DynamicThreshold(target_rate=0.1, initial=gr.Score(0.5), step=10**400)

    @pytest.mark.parametrize(
        ("key", "value"),
        [("step", 1.7976931348623157e308), ("step", 10**400), ("initial", 1.3e154)],
    )
    def test_restore_with_extreme_numbers(self, key: str, value: object) -> None:
        """A snapshot holding an extreme number is a FormatError."""
        snapshot = DynamicThreshold(target_rate=0.1, initial=gr.Probability(0.5)).snapshot()
        snapshot["config"][key] = value
        with pytest.raises(FormatError):
            DynamicThreshold.restore(snapshot)

    def test_config_of_another_model_threshold(self) -> None:
        """A configuration whose threshold names another model is a FormatError."""
        doc = config()
        doc["mechanisms"][0]["settings"]["model"]["name"] = "other"  # type: ignore[index]
        with pytest.raises(FormatError, match="cannot decide"):
            gr.GuardConfig.from_dict(doc)

    def test_deep_nesting(self) -> None:
        """A document nested 100,000 deep is a FormatError from every loader."""
        deep = "[" * 100_000 + "]" * 100_000
        for load in (gr.Profile.from_json, gr.ModelRef.from_json, DynamicThreshold.restore):
            with pytest.raises(FormatError):
                load(deep)
        nested: object = []
        for _ in range(100_000):
            nested = [nested]
        with pytest.raises(FormatError, match="format=<list>"):
            gr.Profile.from_dict({"format": nested, "version": 1, "features": []})


class TestExtremeFloats:
    @pytest.mark.parametrize(
        "values",
        [
            [1.3e154, 1.4e154, 2e154],
            [FLOAT_MAX, -FLOAT_MAX, FLOAT_MAX / 2, 0.0],
            [FLOAT_MAX] * 5,
            [1e300, -1e300] * 100,
        ],
    )
    def test_profiles_round_trip(self, values: list[float]) -> None:
        """A profile of finite floats up to the float limits writes, reads back and merges."""
        profile = gr.Profile.from_columns({"x": np.array(values)})
        again = gr.Profile.from_json(profile.to_json())
        assert again == profile
        feature = again["x"]
        assert math.isfinite(feature.mean)
        assert math.isfinite(feature.m2)
        assert min(values) <= feature.mean <= max(values)
        gr.Profile.from_json(profile.merge(again).to_json())

    def test_moments_near_the_limits(self) -> None:
        """The mean of values near 1.3e154 is exact enough and the variance finite."""
        values = np.array([1.3e154, 1.4e154, 2e154])
        feature = gr.Profile.from_columns({"x": values})["x"]
        assert feature.mean == pytest.approx(values.mean(), rel=1e-12)
        assert feature.std == pytest.approx(float(np.std(values / 1e154)) * 1e154, rel=1e-9)

    def test_compares_sensibly(self) -> None:
        """Near the float limits a profile matches itself and a halved copy drifts, in JSON."""
        values = np.concatenate([np.linspace(-1.0, 1.0, 1001) * FLOAT_MAX, [FLOAT_MAX]])
        profile = gr.Profile.from_columns({"x": values})
        same = compare(profile, gr.Profile.from_json(profile.to_json()))
        assert same.severity == "ok"
        halved = gr.Profile.from_columns({"x": values * 0.5}, like=profile)
        report = compare(profile, halved)
        assert report.severity == "alert"
        metrics = json.loads(report.to_json())["features"][0]["metrics"]
        assert all(m["value"] is None or math.isfinite(m["value"]) for m in metrics)
        wasserstein = next(m["value"] for m in metrics if m["metric"] == "wasserstein")
        assert 0.1 < wasserstein < 10


def _ref() -> gr.Profile:
    return gr.Profile.from_columns(
        {
            "amount": np.arange(1000.0),
            "country": np.array(["FR", "DE"] * 500, dtype=object),
        }
    )


class _NoFloat(int):
    """An int whose float() fails: profiling it raises inside numpy's conversion."""

    def __float__(self) -> float:
        raise RuntimeError("no float")


class TestMonitorsDegradePerValue:
    def test_an_array_and_a_none_in_one_block(self) -> None:
        """Garbage every other row costs those rows' values only; the block is profiled."""
        monitor = gr.SkewMonitor(reference=_ref(), every=100_000, seconds=None)
        for i in range(4096):
            if i % 4 == 1:
                monitor.observe({"amount": np.array([1.0, 2.0]), "country": ["x"]})
            elif i % 4 == 3:
                monitor.observe({"amount": None, "country": "FR"})
            else:
                monitor.observe({"amount": float(i % 1000), "country": "DE"})
        profile = monitor.serving_profile()
        assert profile.rows == 4096
        assert monitor.errors == 0
        assert profile["amount"].invalid == 1024
        assert profile["amount"].missing == 1024
        assert profile["amount"].n == 2048
        assert profile["country"].invalid == 1024

    def test_a_value_that_breaks_profiling_costs_its_row(self) -> None:
        """A value whose conversion raises makes its own row invalid; the rest are profiled."""
        monitor = gr.SkewMonitor(reference=_ref(), every=100_000, seconds=None)
        for i in range(100):
            amount = _NoFloat(5) if i == 50 else float(i)
            monitor.observe({"amount": amount, "country": "FR"})
        profile = monitor.serving_profile()
        assert profile.rows == 100
        assert profile["amount"].n == 99
        assert profile["amount"].invalid == 1
        assert monitor.errors == 0

    def test_serving_profile_never_raises(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """If profiling fails, serving_profile() reports it and returns what there is."""
        monitor = gr.SkewMonitor(reference=_ref(), every=100_000, seconds=None)
        monitor.observe({"amount": 1.0, "country": "FR"})

        def broken() -> None:
            raise ValueError("broken")

        monkeypatch.setattr(monitor, "_flush_locked_no_check", broken)
        profile = monitor.serving_profile()
        assert profile.names == ("amount", "country")
        assert monitor.errors == 1

    @pytest.mark.parametrize("batch", [{"other": [1, 2, 3]}, {"other": []}, {}])
    def test_raise_refuses_a_batch_without_features(self, batch: dict[str, list[int]]) -> None:
        """Under on_invalid="raise" a column batch holding none of the features is refused."""
        monitor = gr.SkewMonitor(reference=_ref(), on_invalid="raise")
        with pytest.raises(gr.errors.SchemaViolationError, match="missing"):
            monitor.observe_batch(batch)

    def test_raise_refuses_an_empty_frame(self) -> None:
        """An empty DataFrame holds none of the features: refused under "raise"."""
        pd = pytest.importorskip("pandas")
        monitor = gr.SkewMonitor(reference=_ref(), on_invalid="raise")
        with pytest.raises(gr.errors.SchemaViolationError):
            monitor.observe_batch(pd.DataFrame())

    def test_no_zero_counts(self) -> None:
        """An empty batch under "report" records no violation counts of zero."""
        monitor = gr.SkewMonitor(reference=_ref())
        monitor.observe_batch({"other": []})
        assert monitor.violations() == {}


class TestOddUnicode:
    def test_lone_surrogate_unit_is_held_out_by_its_bytes(self, tmp_path: Path) -> None:
        """A unit id with a lone surrogate is assigned (hashed as bytes) and logged."""
        holdout = gr.Holdout(fraction=0.5, unit=lambda row: row["user"], salt="s")
        odd = {"user": "a\ud800b"}
        assert holdout.arm(odd) in ("holdout", "model")
        assert holdout.arm(odd) == holdout.arm({"user": "a\ud800b"})
        assert holdout.hashed_unit(odd) != holdout.hashed_unit({"user": "a\ud801b"})
        path = tmp_path / "log.jsonl"
        log = gr.DecisionLog(gr.holdout.JsonLinesSink(path), holdout=holdout)
        log.write(gr.Prediction(gr.Probability(0.5), MODEL), inputs=odd)
        log.close()
        (line,) = path.read_text(encoding="utf-8").splitlines()
        assert json.loads(line)["unit"] == holdout.hashed_unit(odd)
        assert log.written == 1


class _UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


class TestLimitKeys:
    def test_an_unprintable_key_error_does_not_bypass_raise(self) -> None:
        """A key function raising an unprintable exception still meets on_exceed="raise"."""

        def key(row: object) -> str:
            raise _UnprintableError

        limit = gr.ActionLimit(
            "block", max_actions=5, per="1h", key=key, on_exceed="raise", on_error="closed"
        )

        @gr.guard(
            model=MODEL,
            returns=gr.Probability,
            threshold=gr.Threshold(0.5, scale=gr.Probability),
            limits=[limit],
        )
        def predict(row: dict[str, int]) -> float:
            return 0.9

        with pytest.raises(gr.errors.ActionLimitExceededError) as raised:
            predict({"a": 1})
        assert raised.value.degraded


class TestSparseRows:
    def test_same_profile_as_dense_columns(self) -> None:
        """Sparse rows profile exactly as the columns with None where a key is absent."""
        rows: list[dict[str, object]] = [
            {"a": 1.0, "b": "x"},
            {"c": 2.0},
            {"a": None, "b": "y", "c": 3.0},
            {},
            {"b": 5},
        ]
        dense = {name: [row.get(name) for row in rows] for name in ("a", "b", "c")}
        assert gr.Profile.from_rows(rows) == gr.Profile.from_columns(dense)
        reference = gr.Profile.from_columns(dense)
        assert gr.Profile.from_rows(rows, like=reference) == gr.Profile.from_columns(
            dense, like=reference
        )

    def test_memory_is_linear_in_present_values(self) -> None:
        """6,000 rows each with a key of its own profile in bounded memory (not rows x keys)."""
        import tracemalloc

        rows = [{f"k{i}": float(i)} for i in range(6_000)]
        tracemalloc.start()
        try:
            profile = gr.Profile.from_rows(rows)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(profile) == 6_000
        assert profile["k7"].missing == 5_999
        # Rows x keys would be 36 million cells (288 MB of pointers alone).
        assert peak < 64 * 2**20
