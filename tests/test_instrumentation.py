"""The public instrumentation module: hooks, settings, and what reaches OpenTelemetry."""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import textwrap
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import guardrail as gr
from guardrail import instrumentation
from guardrail.instrumentation import CallHook, Hook, Settings, configure, get_config
from guardrail.mechanisms import Call

SRC = Path(__file__).resolve().parent.parent / "src"
MODEL = gr.ModelRef(name="fraud", version="3.1.0")
CUT = gr.Threshold(0.5, scale=gr.Probability)


class TestPublicModule:
    def test_all_is_sorted(self) -> None:
        """__all__ is sorted, so additions are easy to review."""
        assert instrumentation.__all__ == sorted(instrumentation.__all__)

    def test_names_report_the_public_module(self) -> None:
        """Each exported class and function names guardrail.instrumentation as its module."""
        for name in instrumentation.__all__:
            value = getattr(instrumentation, name)
            assert isinstance(value, (type, types.FunctionType)), name
            expected = "guardrail" if name in gr.__all__ else "guardrail.instrumentation"
            assert value.__module__ == expected, name

    def test_everything_has_a_docstring(self) -> None:
        """Each exported name carries a docstring."""
        assert [n for n in instrumentation.__all__ if not getattr(instrumentation, n).__doc__] == []

    def test_top_level_names_are_the_same_objects(self) -> None:
        """The package root re-exports the same configure, and the module itself."""
        assert gr.configure is instrumentation.configure
        assert gr.instrumentation is instrumentation

    def test_events_still_pickle_by_reference(self) -> None:
        """An event pickles and loads again under its public module."""
        source = gr.mechanisms.Source("limit", "sms")
        event = gr.instrumentation.LimitNear(source=source, key=None, near=0.8)
        assert pickle.loads(pickle.dumps(event)) == event


class TestHookProtocols:
    def test_opentelemetry_hook_is_a_call_hook(self) -> None:
        """OpenTelemetryHook implements CallHook; StructlogHook is an event hook only."""
        assert isinstance(gr.instrumentation.OpenTelemetryHook(), CallHook)
        assert isinstance(gr.instrumentation.StructlogHook(), Hook)
        assert not isinstance(gr.instrumentation.StructlogHook(), CallHook)

    def test_a_hook_needs_emit(self) -> None:
        """An object without emit(event) is refused when configured."""
        with pytest.raises(gr.ConfigError, match="emit"):
            configure(hooks=[object()])  # type: ignore[list-item]

    def test_half_a_call_hook_is_refused(self) -> None:
        """A hook with start_call but not all of CallHook is refused, naming what is missing."""

        class Partial:
            def emit(self, event: gr.instrumentation.Event) -> None: ...

            def start_call(self, guard: str, config_fingerprint: str) -> None: ...

        with pytest.raises(gr.ConfigError, match="needs_sdk, end_call, machinery_error, add"):
            configure(hooks=[Partial()])

    def test_a_raising_call_hook_is_counted_and_never_breaks_a_call(self) -> None:
        """A call hook that raises everywhere is counted as machinery errors; calls go on."""
        hook = Raising()
        configure(hooks=[hook])
        limit = gr.ActionLimit("sms", max_actions=1, per="1h")

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=CUT, limits=[limit])
        def predict(row: dict[str, Any]) -> float:
            return 0.9

        assert predict({}).act is True
        assert predict({}).act is False  # denied by the limit, reported through add()
        assert limit.allow() is False
        # start_call failed twice (so no scope to end); machinery_error and emit failed too.
        assert gr.guard_of(predict).stats().machinery_errors == 2
        assert hook.calls == {"start_call": 2, "machinery_error": 2, "emit": 4, "add": 3}


class Raising:
    """A call hook whose every method raises, after counting the call."""

    needs_sdk = False

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def _fail(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        raise RuntimeError("exporter down")

    def emit(self, event: gr.instrumentation.Event) -> None:
        self._fail("emit")

    def start_call(self, guard: str, config_fingerprint: str) -> None:
        self._fail("start_call")

    def end_call(self, scope: Any, call: Call, error: BaseException | None, paused: bool) -> None:
        self._fail("end_call")

    def machinery_error(self, guard: str, component: str) -> None:
        self._fail("machinery_error")

    def add(self, instrument: str, amount: int, attributes: Mapping[str, str]) -> None:
        self._fail("add")


class TestGetConfig:
    def test_round_trips_with_configure(self) -> None:
        """Settings from get_config() restore what configure() changed."""
        saved = get_config()
        hook = gr.instrumentation.StructlogHook()
        configure(hooks=[hook], on_undeclared_consumer="raise")
        assert get_config() == Settings(hooks=(hook,), on_undeclared_consumer="raise")
        configure(**attrs.asdict(saved, recurse=False))
        assert get_config() == saved

    def test_defaults_are_resolved(self) -> None:
        """With hooks=None the active hooks are a StructlogHook and a global OpenTelemetryHook."""
        configure(hooks=None)
        structlog_hook, otel_hook = get_config().hooks
        assert isinstance(structlog_hook, gr.instrumentation.StructlogHook)
        assert isinstance(otel_hook, gr.instrumentation.OpenTelemetryHook)
        assert otel_hook.needs_sdk

    def test_settings_are_frozen(self) -> None:
        """The settings value cannot be changed in place."""
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            get_config().hooks = ()  # type: ignore[misc]


class TestAttributes:
    def test_holdout_batch_sets_only_valid_attribute_types(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A holdout batch's span holds its holdout count; OpenTelemetry logs no invalid type."""
        spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        configure(hooks=[gr.instrumentation.OpenTelemetryHook(tracer_provider=tracer_provider)])
        holdout = gr.Holdout(fraction=0.5, unit=lambda row: row["user"], salt="s")

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=CUT, holdout=holdout)
        def predict(rows: list[dict[str, int]]) -> np.ndarray:
            return np.full(len(rows), 0.9)

        with caplog.at_level(logging.WARNING, logger="opentelemetry.attributes"):
            decision = predict([{"user": i} for i in range(40)])
        assert [r.getMessage() for r in caplog.records if "Invalid type" in r.getMessage()] == []
        (span,) = spans.get_finished_spans()
        attributes = dict(span.attributes or {})
        assert attributes["guardrail.holdout_count"] == int(np.sum(decision.arm == "holdout"))
        assert "guardrail.arm" not in attributes

    def test_event_fields_keep_numeric_lists(self) -> None:
        """Span events keep homogeneous lists and write anything else as text."""
        from guardrail._otel import _attributes

        fields = {"a": [1.0, 2.0], "b": [1, "x"], "c": np.int64(3), "d": np.float64(0.5)}
        assert _attributes(fields) == {
            "guardrail.a": [1.0, 2.0],
            "guardrail.b": "[1, 'x']",
            "guardrail.c": "3",
            "guardrail.d": 0.5,
        }


# Run in a fresh interpreter: the global providers can be set once per process.
_GLOBAL_SDK = textwrap.dedent(
    """
    import json, sys
    import structlog
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from structlog.testing import capture_logs

    import guardrail as gr
    from guardrail.instrumentation import configure

    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    configure(hooks=[] if sys.argv[1] == "off" else None)

    model = gr.ModelRef(name="fraud", version="1", consumers=("blocker",))
    limit = gr.ActionLimit("block_card", max_actions=1, per="1h")
    standalone = gr.ActionLimit("sms", max_actions=1, per="1h")

    cut = gr.Threshold(0.5, scale=gr.Probability)

    @gr.guard(model=model, returns=gr.Probability, threshold=cut, limits=[limit])
    def predict(row):
        return 0.9

    @gr.guard(model=model, returns=gr.Probability)
    def plain(row):
        return 0.2

    with capture_logs() as logs:
        decisions = [predict({}).act, predict({}).act, plain({}).value.value]
        allowed = [standalone.allow(), standalone.allow()]
        gr.Prediction(gr.Probability(0.1), model).consume(by="mailer")
    points = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            assert sm.scope.version == gr.__version__, sm.scope
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    points.setdefault(metric.name, []).append(
                        [dict(p.attributes), getattr(p, "value", None)]
                    )
    print(json.dumps({
        "decisions": decisions, "allowed": allowed, "logs": len(logs),
        "spans": [s.instrumentation_scope.version for s in spans.get_finished_spans()],
        "points": points,
    }))
    """
)


def run_with_global_sdk(hooks: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", _GLOBAL_SDK, hooks],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout))


class TestGlobalSDK:
    def test_no_hooks_records_nothing_anywhere(self) -> None:
        """configure(hooks=[]) with an SDK set: no span, metric point or log line, limits too."""
        out = run_with_global_sdk("off")
        assert out["decisions"] == [True, False, 0.2]
        assert out["allowed"] == [True, False]
        assert (out["spans"], out["points"], out["logs"]) == ([], {}, 0)

    def test_default_hooks_count_limits_with_their_attributes(self) -> None:
        """With the default hooks and an SDK set, limit counters appear per limit."""
        out = run_with_global_sdk("defaults")
        points = out["points"]
        allowed = {p[0]["guardrail.limit"]: p[1] for p in points["guardrail.limit.allowed"]}
        denied = {p[0]["guardrail.limit"]: p[1] for p in points["guardrail.limit.denied"]}
        assert allowed == {"block_card": 1, "sms": 1}
        assert denied == {"block_card": 1, "sms": 1}
        assert out["spans"] == [gr.__version__] * 3
        assert out["logs"] >= 1  # the undeclared consumer, the limit exceeded


class TestFallback:
    def test_without_the_api_globals_the_public_api_answers(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An API laid out without the globals read is asked through its public functions."""
        from opentelemetry import metrics

        from guardrail._otel import sdk_configured

        monkeypatch.delattr(metrics, "_internal")
        assert sdk_configured() is False
        provider = MeterProvider()
        monkeypatch.setattr(metrics, "get_meter_provider", lambda: provider)
        assert sdk_configured() is True


_PROBE = textwrap.dedent(
    """
    import json, sys
    from importlib.metadata import version
    from guardrail._otel import sdk_configured

    if sys.argv[1] == "tracer":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        trace.set_tracer_provider(TracerProvider())
    elif sys.argv[1] == "meter":
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        metrics.set_meter_provider(MeterProvider())
    print(json.dumps([version("opentelemetry-api"), sdk_configured()]))
    """
)


def _make_venv(path: Path, requirements: list[str]) -> subprocess.CompletedProcess[str]:
    """A venv seeing this interpreter's packages, with *requirements* installed over them."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(path)],
        check=True,
        capture_output=True,
    )
    return subprocess.run(
        [
            str(path / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--timeout",
            "15",
            "--upgrade",
            *requirements,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )


@pytest.fixture(scope="session")
def otel_venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Interpreters with the oldest opentelemetry-api guardrail allows, and the newest."""
    import concurrent.futures

    root = tmp_path_factory.mktemp("otel-venvs")
    wanted = {
        "oldest": ["opentelemetry-api==1.24.0", "opentelemetry-sdk==1.24.0"],
        "newest": ["opentelemetry-api", "opentelemetry-sdk"],
    }
    with concurrent.futures.ThreadPoolExecutor(len(wanted)) as pool:
        done = {
            name: pool.submit(_make_venv, root / name, requirements)
            for name, requirements in wanted.items()
        }
    for result in (future.result() for future in done.values()):
        if result.returncode != 0:
            if "Could not find a version" in result.stderr or "NewConnectionError" in (
                result.stderr
            ):
                pytest.skip(f"pip cannot reach the package index: {result.stderr[-300:]}")
            pytest.fail(result.stderr[-3000:])
    return {name: root / name / "bin" / "python" for name in wanted}


@pytest.mark.integration
class TestSdkConfigured:
    @pytest.mark.parametrize("api", ["oldest", "newest"])
    @pytest.mark.parametrize(
        ("case", "environment", "expected"),
        [
            ("none", {}, False),
            ("tracer", {}, True),
            ("meter", {}, True),
            ("none", {"OTEL_PYTHON_TRACER_PROVIDER": "sdk_tracer_provider"}, True),
            ("none", {"OTEL_PYTHON_METER_PROVIDER": "sdk_meter_provider"}, True),
        ],
    )
    def test_across_api_versions(
        self,
        otel_venvs: dict[str, Path],
        api: str,
        case: str,
        environment: dict[str, str],
        expected: bool,
    ) -> None:
        """No provider is not configured; a provider set in code or the environment is."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
        }
        done = subprocess.run(
            [str(otel_venvs[api]), "-c", _PROBE, case],
            capture_output=True,
            text=True,
            check=False,
            env={**env, **environment, "PYTHONPATH": str(SRC)},
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        version, configured = json.loads(done.stdout)
        if api == "oldest":
            assert version == "1.24.0"
        assert configured is expected
