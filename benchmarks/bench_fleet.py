"""The per-call cost of the fleet mechanisms: a shared threshold and the fleet exporter.

Run: ``python benchmarks/bench_fleet.py`` (starts its own ``redis-server`` and,
if installed, ``prometheus`` on free loopback ports).

Cases: ``SharedThreshold.decide`` from its cache (no Redis call) next to
``DynamicThreshold.decide``; one ``SharedThreshold.sync`` (the Lua script: one
Redis round trip); ``FleetExporter.record`` of one row and of 100 rows of 15
numeric and 5 categorical features (buffered, folded every 4,096 rows: the
amortized cost); one collection by the OpenTelemetry SDK (what a scrape costs
the replica), with no new values and after 1,000 new rows (whose 15,000
numeric values are recorded into the histograms then; and with
``bins="counters"``, which records nothing per value);
``fleet_profile`` against an empty Prometheus (its HTTP queries, without the
cost of summing stored series), and against a Prometheus that has scraped
a fleet: a synthetic exporter process serves one replica's exposition
(the real exporter's, for the same reference) once per replica with a
``replica`` label (100 replicas by default), its counts growing each
scrape; Prometheus scrapes it every second for a minute, then
``fleet_profile`` is timed without ``since`` (one sample per series) and
with ``since="1m"`` (about 60 samples per series), with Prometheus's own
``prometheus_engine_query_duration_seconds`` (inner evaluation) over the
same runs. The per-call cases are timed round-robin by ``_harness.py`` (wall
time: Redis, Prometheus and the SDK's reader are other processes and
threads); the collections after new rows and the fleet queries change state
as they run or wait on Prometheus, so they are medians of repeated runs.

Options: ``--replicas N`` (default 100), ``--seconds S`` of scraping (default
60); ``--serve PORT TEMPLATE`` is the synthetic exporter itself.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _harness import Suite, format_seconds, machine

import guardrail as gr
from guardrail.skew import FleetExporter, NumericProfile, fleet_profile
from guardrail.thresholds import SharedThreshold


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def per_call(fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    """Median seconds per call over *repeat* runs of *number* calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def columns(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {f"f{i}": rng.normal(i, 1.0, rows) for i in range(15)}
    for i in range(5):
        cats = np.array([f"cat{i}_{j}" for j in range(10 * (i + 1))], dtype=object)
        out[f"c{i}"] = cats[rng.integers(0, len(cats), rows)]
    return out


def collection_after_rows(exporter: FleetExporter, reader: Any) -> float:
    """Median seconds of one collection after 1,000 new rows, over three rounds."""
    times = []
    for seed in range(3):
        exporter.record(columns(1_000, 10 + seed))
        start = time.perf_counter()
        reader.get_metrics_data()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def serve(port: int, template: str) -> None:
    """The synthetic exporter: every replica's series, counts scaled by the scrape number."""
    lines: list[tuple[str, float, bool]] = json.loads(Path(template).read_text())
    scrapes = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            scrapes[0] += 1
            n = scrapes[0]
            body = "".join(
                f"{prefix} {value * n if grows else value!r}\n" for prefix, value, grows in lines
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(http.server.HTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a scrape that timed out closed its connection: the next one comes

    Server(("127.0.0.1", port), Handler).serve_forever()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")


def fleet_template(exposition: str, replicas: int) -> list[tuple[str, float, bool]]:
    """One replica's sample lines, repeated with a ``replica`` label: (prefix, value, grows)."""
    out = []
    for line in exposition.splitlines():
        match = _SAMPLE.match(line)
        if match is None or not match.group(1).startswith("guardrail_fleet_"):
            continue
        name, labels, value = match.groups()
        grows = name.endswith(("_total", "_bucket", "_count"))
        for r in range(replicas):
            inner = f'{labels},replica="r{r}"' if labels else f'replica="r{r}"'
            out.append((f"{name}{{{inner}}}", float(value), grows))
    return out


def engine_seconds(url: str) -> tuple[float, float]:
    """Prometheus's own inner evaluation time: (sum of seconds, count of queries) so far."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = {}
    for line in text.splitlines():
        for what in ("sum", "count"):
            key = f'prometheus_engine_query_duration_seconds_{what}{{slice="inner_eval"}}'
            if line.startswith(key):
                found[what] = float(line.split()[-1])
    return found.get("sum", 0.0), found.get("count", 0.0)


def query_fleet(
    executable: str, reference: gr.Profile, exposition: str, replicas: int, seconds: float
) -> list[tuple[str, float, str]]:
    """Time ``fleet_profile`` against a Prometheus that scraped *replicas* synthetic replicas."""
    rows: list[tuple[str, float, str]] = []
    directory = tempfile.mkdtemp(prefix="guardrail-bench-")
    template = Path(directory) / "template.json"
    lines = fleet_template(exposition, replicas)
    template.write_text(json.dumps(lines))
    target = free_port()
    exporter = subprocess.Popen([sys.executable, __file__, "--serve", str(target), str(template)])
    config = Path(directory) / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: fleet\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target}']\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [executable, f"--config.file={config}", f"--storage.tsdb.path={directory}/data",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    model = gr.ModelRef(name="m", version="1")
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(seconds)
        series = fleet_series(url)
        samples = fleet_query(url, 'count_over_time(up{job="fleet"}[1m])')
        print(
            f"fleet: {replicas} replicas, {len(lines)} exposed samples a scrape, "
            f"{series:.0f} series stored, {samples:.0f} scrapes in the last minute",
            file=sys.stderr,
        )
        for since, label in ((None, "no `since`: 1 sample a series"),
                             ("1m", f"`since=\"1m\"`: {samples:.0f} samples a series")):  # fmt: skip
            fleet_profile(reference, url, model=model, since=since, timeout=60)  # warm
            before = engine_seconds(url)
            times = []
            for _ in range(5):
                start = time.perf_counter()
                profile = fleet_profile(reference, url, model=model, since=since, timeout=60)
                times.append(time.perf_counter() - start)
            after = engine_seconds(url)
            queries = after[1] - before[1]
            inner = (after[0] - before[0]) / 5
            rows.append(
                (
                    f"`fleet_profile`, {replicas} replicas ({series:.0f} series), {label}",
                    statistics.median(times),
                    f"{inner * 1e3:.1f} ms evaluating, {queries / 5:.0f} queries",
                )
            )
            print(f"  since={since}: {profile.rows} rows", file=sys.stderr)
    finally:
        server.kill()
        server.wait()
        exporter.kill()
        exporter.wait()
        shutil.rmtree(directory, ignore_errors=True)
    return rows


def fleet_query(url: str, expression: str) -> float:
    query = urllib.parse.urlencode({"query": expression})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=60) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def fleet_series(url: str) -> float:
    return fleet_query(url, 'count({__name__=~"guardrail_fleet_.+", model="m"})')


def main(replicas: int = 100, seconds: float = 60.0) -> int:
    import redis
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    gr.configure(hooks=[])
    suite = Suite("Fleet mechanisms (per call)")
    rows: list[tuple[str, float, str]] = []
    port = free_port()
    directory = tempfile.mkdtemp(prefix="guardrail-bench-")
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            directory,
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        store = gr.RedisStore(client, namespace="bench", deadline=0.5)
        model = gr.ModelRef(name="m", version="1")
        prediction = gr.Prediction(gr.Probability(0.7), model=model)
        local = gr.DynamicThreshold(target_rate=0.05, initial=gr.Probability(0.9))
        shared = SharedThreshold(
            target_rate=0.05, initial=gr.Probability(0.9), store=store, max_staleness=3600.0
        )
        shared.sync()
        local_name = "`DynamicThreshold.decide` (one process)"
        suite.time(local_name, lambda: local.decide(prediction), number=5_000, repeat=9)
        suite.time(
            "`SharedThreshold.decide`, from the cache",
            lambda: shared.decide(prediction),
            number=5_000,
            repeat=9,
            baseline=local_name,
        )
        suite.time(
            "`SharedThreshold.sync` (one Lua script, one round trip)",
            shared.sync,
            number=200,
            repeat=9,
        )
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(directory, ignore_errors=True)

    reference = gr.Profile.from_columns(columns(20_000))
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    exporter = FleetExporter(
        reference, model=gr.ModelRef(name="m", version="1"), meter_provider=provider
    )
    one = {name: values[:1] for name, values in columns(1, 1).items()}
    hundred = columns(100, 2)
    suite.time(
        "`FleetExporter.record`, 1 row x 20 features",
        lambda: exporter.record(one),
        number=500,
        repeat=9,
        note="amortized: folded every 4,096 rows",
    )
    suite.time(
        "`FleetExporter.record`, 100 rows x 20 features",
        lambda: exporter.record(hundred),
        number=200,
        repeat=9,
        baseline="`FleetExporter.record`, 1 row x 20 features",
        note="amortized",
    )

    reader.get_metrics_data()  # records what was counted so far
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import generate_latest

    replica = FleetExporter(
        reference,
        model=gr.ModelRef(name="m", version="1"),
        meter_provider=MeterProvider(metric_readers=[PrometheusMetricReader()]),
    )
    replica.record(columns(1_000, 3))
    exposition = generate_latest().decode()
    per_replica = sum(line.startswith("guardrail_fleet_") for line in exposition.splitlines())
    suite.time(
        f"one collection (a scrape), no new values: 20 features, {per_replica} series",
        reader.get_metrics_data,
        number=10,
        repeat=6,
    )
    histogram_cost = collection_after_rows(exporter, reader)
    rows.append(
        (
            "one collection after 1,000 new rows (15,000 numeric values recorded)",
            histogram_cost,
            "",
        )
    )
    counters_reader = InMemoryMetricReader()
    counters = FleetExporter(
        reference,
        model=gr.ModelRef(name="m", version="1"),
        meter_provider=MeterProvider(metric_readers=[counters_reader]),
        bins="counters",
    )
    counters_reader.get_metrics_data()
    counters_cost = collection_after_rows(counters, counters_reader)
    rows.append(
        (
            'the same with `bins="counters"`',
            counters_cost,
            f"{counters_cost / histogram_cost:.2f}x",
        )
    )

    executable = shutil.which("prometheus")
    if executable is not None:
        directory = tempfile.mkdtemp(prefix="guardrail-bench-")
        config = Path(directory) / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
        port = free_port()
        server = subprocess.Popen(
            [executable, f"--config.file={config}", f"--storage.tsdb.path={directory}/data",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            queries = 9 + sum(isinstance(f, NumericProfile) for f in reference)
            suite.time(
                f"`fleet_profile` on an empty Prometheus ({queries} queries)",
                lambda: fleet_profile(reference, url, model="m", since="1h"),
                number=10,
                repeat=6,
            )
        finally:
            server.kill()
            server.wait()
            shutil.rmtree(directory, ignore_errors=True)
        rows.extend(query_fleet(executable, reference, exposition, replicas, seconds))

    print(f"_{machine()}_\n")
    print("redis-server and Prometheus on loopback.\n")
    print(suite.table())
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print()
    print(f"### Collections after new rows, and a fleet in Prometheus (load average {load})")
    print()
    print("Medians of repeated runs (each changes state or waits on Prometheus).")
    print()
    print("| case | median | ratio or note |")
    print("| --- | ---: | ---: |")
    for name, seconds, ratio in rows:
        print(f"| {name} | {format_seconds(seconds)} | {ratio} |")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]), sys.argv[3])
    options = dict(zip(sys.argv[1::2], sys.argv[2::2], strict=False))
    sys.exit(
        main(
            replicas=int(options.get("--replicas", 100)),
            seconds=float(options.get("--seconds", 60)),
        )
    )
