"""A fleet's serving profile through OpenTelemetry metrics and a real Prometheus server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import guardrail as gr
from guardrail.errors import MetricsQueryError
from guardrail.skew import fleet_profile

from .conftest import free_port

#: Real engines (Spark, Dask, Redis, Prometheus): the integration tier.
pytestmark = pytest.mark.integration

pytest.importorskip("opentelemetry.exporter.prometheus")


class Prometheus:
    """A Prometheus server on a free loopback port, scraping the given targets every second."""

    def __init__(self, executable: str, directory: Path, targets: list[int]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = directory / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: replicas\n    static_configs:\n"
            f"      - targets: [{', '.join(f'127.0.0.1:{p}' for p in targets)!s}]\n",
            encoding="utf-8",
        )
        self.process = subprocess.Popen(
            [
                executable,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("prometheus did not start")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def training(rows: int, seed: int, shift: float = 0.0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0 + shift, 1.0, rows).astype(object)
    amount[::37] = None
    amount[::101] = float("nan")
    country = np.array(["FR", "DE", "US", "GB"], dtype=object)[rng.integers(0, 4, rows)]
    country[::53] = "XX"
    country[::71] = None
    return {"amount": amount, "age": rng.integers(18, 90, rows), "country": country}


# One replica: exports what its guard sees, keeps its own profile, stays up to be scraped.
REPLICA = """
import json, sys
import numpy as np
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import start_http_server
import guardrail as gr
from guardrail.skew import FleetExporter
sys.path.insert(0, sys.argv[5])
from test_fleet_data import training


port, seed, shift = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
reference_path = sys.argv[4]
gr.configure(hooks=[])
start_http_server(port, addr="127.0.0.1")
provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
reference = gr.Profile.from_json(open(reference_path).read())
model = gr.ModelRef(name="fraud", version="3.1.0")
exporter = FleetExporter(reference, model=model, meter_provider=provider, bins=sys.argv[6])
own = reference.builder()

@gr.guard(model=model, returns=gr.Probability, inputs=exporter)
def predict(columns):
    return np.full(len(columns["age"]), 0.5)

data = training(3_000, seed, shift)
for start in range(0, 3_000, 250):
    batch = {name: values[start:start + 250] for name, values in data.items()}
    predict(batch)
    own.add_columns(batch)
print(json.dumps({"profile": own.build().to_json(), "errors": exporter.errors}), flush=True)
while sys.stdin.readline().strip() == "more":  # 500 rows more, then say so
    predict({name: values[:250] for name, values in data.items()})
    predict({name: values[250:500] for name, values in data.items()})
    print("done", flush=True)
"""


@pytest.fixture
def prometheus_executable() -> str:
    executable = shutil.which("prometheus")
    if executable is None:
        pytest.skip("prometheus is not installed (.ci/run installs it)")
    return executable


class TestFleetProfile:
    def test_prometheus_sums_the_fleet(self, prometheus_executable: str, tmp_path: Path) -> None:
        """The fleet profile read from Prometheus equals the merge of the replicas' own profiles.

        Two replicas export histograms and one per-bin counters; the read adds both.
        """
        reference = gr.Profile.from_columns(training(20_000, 99), bins=10)
        reference_path = tmp_path / "reference.json"
        reference_path.write_text(reference.to_json(), encoding="utf-8")
        # The replicas import the data generator from a file of their own.
        (tmp_path / "test_fleet_data.py").write_text(
            "import numpy as np\nfrom typing import Any\n\n\n" + _source(training),
            encoding="utf-8",
        )
        ports = [free_port() for _ in range(3)]
        server = Prometheus(prometheus_executable, tmp_path, ports)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        replicas = [
            subprocess.Popen(
                [sys.executable, "-c", REPLICA, str(port), str(seed), str(shift),
                 str(reference_path), str(tmp_path), bins],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for port, seed, shift, bins in zip(
                ports, (1, 2, 3), (0.0, 0.0, 1.5), ("histogram", "counters", "histogram"),
                strict=True,
            )
        ]  # fmt: skip
        try:
            profiles = []
            for p in replicas:
                assert p.stdout is not None
                line = json.loads(p.stdout.readline())
                assert line["errors"] == 0
                profiles.append(gr.Profile.from_json(line["profile"]))
            merged = profiles[0].merge(profiles[1]).merge(profiles[2])
            model = gr.ModelRef(name="fraud", version="3.1.0")
            fleet = None
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:  # until the scrapes after the last batch
                fleet = fleet_profile(reference, server.url, model=model)
                if fleet.rows == merged.rows and fleet["country"].count == merged.rows:
                    break
                time.sleep(0.5)
            assert fleet is not None
            assert fleet.rows == merged.rows == 9_000
            for mine, theirs in zip(fleet, merged, strict=True):
                data, expected = mine.to_dict(), theirs.to_dict()
                for key in ("mean", "m2", "tail_low", "tail_high"):
                    if key in expected:
                        assert data.pop(key) == pytest.approx(expected.pop(key), rel=1e-9)
                data.pop("heavy", None)  # new categories are counted, not named
                expected.pop("heavy", None)
                # Metrics carry no point masses: the fleet's profile says it has none.
                points = ("at_min", "at_max", "mode", "mode_count", "heaviest", "sums", "lows",
                          "highs", "at_lows", "at_highs")  # fmt: skip
                for key in points:
                    if key in data:
                        assert data.pop(key) is None
                        expected.pop(key)
                assert data == expected
            report = gr.compare(reference, fleet)
            assert report["amount"].severity == "alert"  # one replica in three drifted
            assert report["age"].severity == "ok"
            # The command line reads the same sum and exits 1 on the alert.
            done = subprocess.run(
                [sys.executable, "-m", "guardrail", "compare", str(reference_path),
                 "--prometheus", server.url, "--model", "fraud", "--model-version", "3.1.0"],
                capture_output=True, text=True, env=env, check=False, timeout=120,
            )  # fmt: skip
            assert done.returncode == 1, done.stderr
            assert "amount" in done.stdout
            # One replica serves 500 rows more; the last minute's increase() sees
            # about those (Prometheus extrapolates to the range, so not exactly).
            first = replicas[0]
            assert first.stdin is not None
            assert first.stdout is not None
            first.stdin.write("more\n")
            first.stdin.flush()
            assert first.stdout.readline().strip() == "done"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if fleet_profile(reference, server.url, model=model).rows == 9_500:
                    break
                time.sleep(0.5)
            time.sleep(2.5)  # a few more scrapes of the settled counters
            recent = fleet_profile(reference, server.url, model="fraud", since="1m")
            assert 400 <= recent.rows <= 1_500, recent.rows  # not the 9,500 in total
        finally:
            for p in replicas:
                p.kill()
                p.communicate(timeout=10)  # and close the pipes
            server.stop()

    def test_command_line_needs_one_source(self, tmp_path: Path) -> None:
        """compare takes SERVING or --prometheus with --model, and says so otherwise."""
        reference = tmp_path / "reference.json"
        reference.write_text(gr.Profile.from_columns({"a": np.arange(9.0)}).to_json())
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        for extra, message in (
            ([], "either SERVING or --prometheus"),
            (["--prometheus", f"http://127.0.0.1:{free_port()}"], "needs --model"),
            (["--prometheus", f"http://127.0.0.1:{free_port()}", "--model", "m"], "query failed"),
        ):
            done = subprocess.run(
                [sys.executable, "-m", "guardrail", "compare", str(reference), *extra],
                capture_output=True, text=True, env=env, check=False, timeout=120,
            )  # fmt: skip
            assert done.returncode == 3, done.stderr
            assert message in done.stderr

    def test_unreachable_prometheus_is_a_query_error(self) -> None:
        """A server that does not answer raises MetricsQueryError."""
        reference = gr.Profile.from_columns({"amount": np.arange(10.0)})
        with pytest.raises(MetricsQueryError):
            fleet_profile(reference, f"http://127.0.0.1:{free_port()}", model="m", timeout=1)


def _source(function: Any) -> str:
    import inspect

    return inspect.getsource(function)


class TestHowTo:
    def test_page_runs_as_written(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The how-to's blocks run; the read-back block skips its query without a server."""
        from .test_doc_examples import ROOT, blocks

        monkeypatch.delenv("PROMETHEUS_URL", raising=False)
        monkeypatch.chdir(tmp_path)
        namespace: dict[str, object] = {"__name__": "__doc_example__"}
        found = blocks(ROOT / "docs/how-to/fleet-prometheus.md")
        assert len(found) == 2
        for number, code in enumerate(found, 1):
            exec(compile(code, f"fleet-prometheus.md[{number}]", "exec"), namespace)
        assert "guardrail_fleet_values_" in str(namespace["exposition"])
