"""A FastAPI service with a guarded endpoint, exporting OpenTelemetry to the console.

Run it as a script to drive it with FastAPI's test client (no server, no
network) and watch the spans and metrics printed by the console exporters::

    python -m pip install 'guardrail-sdk[examples]'
    python examples/fastapi_service.py

Or serve it for real with any ASGI server, e.g. ``uvicorn fastapi_service:app``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from fastapi import FastAPI
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from pydantic import BaseModel

import guardrail as gr

# -- telemetry: configured once, at start-up, the usual OpenTelemetry way ------------

resource = Resource.create({"service.name": "fraud-scoring"})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(tracer_provider)
meter_provider = MeterProvider(
    resource=resource,
    metric_readers=[
        PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=60_000)
    ],
)
metrics.set_meter_provider(meter_provider)
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


def main() -> None:
    """Drive the service with the test client, then flush the exporters."""
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
    tracer_provider.shutdown()
    meter_provider.shutdown()


if __name__ == "__main__":
    main()
