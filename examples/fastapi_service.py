"""A FastAPI service with a guarded endpoint, traced with OpenTelemetry.

Run it as a script to drive it with FastAPI's test client (no server, no
network): it prints the responses and a short summary of the spans and
metrics; ``--spans PATH`` also writes every span and metric as JSON to PATH::

    python -m pip install 'guardrail-sdk[examples]'
    python examples/fastapi_service.py
    python examples/fastapi_service.py --spans spans.json

Or serve it for real with an ASGI server (uvicorn is in the extra); its spans
go to the console exporter::

    cd examples && uvicorn fastapi_service:app
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections import Counter
from typing import Any, TextIO

from fastapi import FastAPI
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    InMemoryMetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

import guardrail as gr

# -- telemetry: configured once, at start-up, the usual OpenTelemetry way ------------

resource = Resource.create({"service.name": "fraud-scoring"})
spans = InMemorySpanExporter()  # what the summary counts (when run as a script)
readings = InMemoryMetricReader()


def configure_telemetry(out: TextIO | None) -> tuple[TracerProvider, MeterProvider]:
    """Set the global providers; spans and metrics go as JSON to *out* when given."""
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    readers: list[Any] = [readings]
    if out is not None:
        tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out)))
        readers.append(
            PeriodicExportingMetricReader(
                ConsoleMetricExporter(out=out), export_interval_millis=60_000
            )
        )
    trace.set_tracer_provider(tracer_provider)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    metrics.set_meter_provider(meter_provider)
    return tracer_provider, meter_provider


tracer = trace.get_tracer("fraud-scoring")

# -- the model and its guard ------------------------------------------------------------

MODEL = gr.ModelRef(name="fraud", version="3.1.0", consumers=("card-blocker",))
WEIGHTS = {"bias": -4.0, "log_amount": 0.9, "night": 0.8}


class Transaction(BaseModel):
    """One card transaction to score."""

    amount: float
    hour: int
    merchant: str


@gr.guard(
    model=MODEL,
    returns=gr.Probability,
    threshold=gr.Threshold(0.5, scale=gr.Probability, model=MODEL),
    name="fraud",
)
def score(row: dict[str, Any]) -> float:
    z = (
        WEIGHTS["bias"]
        + WEIGHTS["log_amount"] * math.log1p(row["amount"])
        + WEIGHTS["night"] * (row["hour"] < 6)
    )
    return 1.0 / (1.0 + math.exp(-z))


app = FastAPI(title="fraud scoring")


@app.post("/score")
def score_endpoint(transaction: Transaction) -> dict[str, Any]:
    """Score a transaction; the guard's span is a child of the handler's span."""
    with tracer.start_as_current_span("score transaction"):
        decision = score(transaction.model_dump())
        return {
            "prediction_id": decision.prediction.id,
            "probability": decision.prediction.value.value,
            "block": bool(decision.act),
            "threshold": decision.threshold.value,
            "model": f"{decision.prediction.model.name} {decision.prediction.model.version}",
        }


def summary() -> list[str]:
    """The spans and metrics recorded, in a few lines."""
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    guarded = [s for s in finished if s.name == "guardrail fraud"]
    parents = Counter(
        by_id[s.parent.span_id].name if s.parent and s.parent.span_id in by_id else "(none)"
        for s in guarded
    )
    lines = [
        f"spans: {len(finished)} ("
        + ", ".join(
            f"{name!r} x{count}" for name, count in Counter(s.name for s in finished).items()
        )
        + ")",
        "guard spans' parent: "
        + ", ".join(f"{name!r} x{count}" for name, count in parents.items()),
    ]
    if guarded:
        attributes = guarded[-1].attributes or {}
        shown = {k: v for k, v in attributes.items() if k.startswith("guardrail.")}
        lines.append(f"last guard span: {dict(sorted(shown.items()))}")
    data = readings.get_metrics_data()
    names = sorted(
        {
            metric.name
            for resource_metrics in (data.resource_metrics if data else ())
            for scope in resource_metrics.scope_metrics
            for metric in scope.metrics
        }
    )
    lines.append(f"metrics: {', '.join(names) or '(none)'}")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Drive the service with the test client, then print a summary of the telemetry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", metavar="PATH", help="also write spans and metrics as JSON")
    args = parser.parse_args(argv)
    out = None if args.spans is None else open(args.spans, "w", encoding="utf-8")  # noqa: SIM115
    tracer_provider, meter_provider = configure_telemetry(out)
    with warnings.catch_warnings():
        # Recent Starlette asks for httpx2 in its test client; httpx still works.
        warnings.filterwarnings("ignore", message=".*httpx2")
        from fastapi.testclient import TestClient

    with TestClient(app) as client:
        for body in (
            {"amount": 12.5, "hour": 14, "merchant": "m-01"},
            {"amount": 2400.0, "hour": 3, "merchant": "m-07"},
        ):
            response = client.post("/score", json=body)
            response.raise_for_status()
            print("response:", response.json())
        bad = client.post("/score", json={"amount": "lots"})
        print("invalid request:", bad.status_code)
    meter_provider.force_flush()
    for line in summary():
        print(line)
    tracer_provider.shutdown()
    meter_provider.shutdown()
    if out is not None:
        out.close()
        print(f"spans and metrics as JSON: {args.spans}")


if __name__ == "__main__":
    main(sys.argv[1:])
else:  # served by an ASGI server: spans and metrics to the console, batched
    _provider, _ = configure_telemetry(None)
    _provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
