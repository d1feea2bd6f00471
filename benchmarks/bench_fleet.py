"""The per-call cost of the fleet mechanisms: a shared threshold and the fleet exporter.

Run: ``python benchmarks/bench_fleet.py`` (starts its own ``redis-server`` and,
if installed, ``prometheus`` on free loopback ports).

Cases: ``SharedThreshold.decide`` from its cache (no Redis call) next to
``DynamicThreshold.decide``; one ``SharedThreshold.sync`` (the Lua script: one
Redis round trip); ``FleetExporter.record`` of one row and of 100 rows of 15
numeric and 5 categorical features (buffered, folded every 4,096 rows: the
amortized cost); one collection by the OpenTelemetry SDK (what a scrape costs
the replica);
``fleet_profile`` against an empty Prometheus (its 12 HTTP queries, without the
cost of summing stored series). Timed round-robin by ``_harness.py`` (wall
time: Redis, Prometheus and the SDK's reader are other processes and threads).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from _harness import Suite, machine

import guardrail as gr
from guardrail.skew import FleetExporter, fleet_profile
from guardrail.thresholds import SharedThreshold


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def columns(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {f"f{i}": rng.normal(i, 1.0, rows) for i in range(15)}
    for i in range(5):
        cats = np.array([f"cat{i}_{j}" for j in range(10 * (i + 1))], dtype=object)
        out[f"c{i}"] = cats[rng.integers(0, len(cats), rows)]
    return out


def main() -> int:
    import redis
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    gr.configure(hooks=[])
    suite = Suite("Fleet mechanisms (per call)")
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
    suite.time(
        "one collection (a scrape): 20 features, 660 series",
        reader.get_metrics_data,
        number=10,
        repeat=6,
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
            suite.time(
                "`fleet_profile` on an empty Prometheus (12 queries)",
                lambda: fleet_profile(reference, url, model="m", since="1h"),
                number=10,
                repeat=6,
            )
        finally:
            server.kill()
            server.wait()
            shutil.rmtree(directory, ignore_errors=True)

    print(f"_{machine()}_\n")
    print("redis-server and Prometheus on loopback.\n")
    print(suite.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
