"""Code that must type-check under ``mypy --strict``; it is never run.

The rejected counterparts live in ``tests/test_typing.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

import guardrail as gr

model = gr.ModelRef(name="fraud", version="3.1.0", consumers=("card-blocker",))

# Scalars keep their float; batches keep their array.
p: gr.Probability[float] = gr.Probability(0.3)
raw: float = p.value
batch: gr.Probability[NDArray[np.float64]] = gr.Probability(np.array([0.1, 0.2]))
raw_batch: NDArray[np.float64] = batch.value

# Conversions keep the payload type.
lo: gr.LogOdds[float] = p.to_log_odds()
back: gr.Probability[float] = lo.to_probability()
lo_batch: gr.LogOdds[NDArray[np.float64]] = batch.to_log_odds()

# Log-odds combine.
evidence: gr.LogOdds[float] = gr.LogOdds(1.0) + gr.LogOdds(0.5) - gr.LogOdds(0.2)
scaled: gr.LogOdds[float] = 2.0 * (gr.LogOdds(1.0) * 0.5)

# Predictions, thresholds, decisions.
prediction = gr.Prediction(p, model)
value: gr.Probability[float] = prediction.consume(by="card-blocker")
threshold = gr.Threshold(0.8, scale=gr.Probability, model=model)
passes = threshold.admits(p)
decision = threshold.decide(prediction)
version: int = decision.threshold.version
score_threshold = gr.Threshold(1.5, scale=gr.Score, direction="<=")
score_passes = score_threshold.admits(gr.Score(np.array([1.0, 2.0])))


# The guard keeps the predict function's parameters and types its output.
@gr.guard(model=model, returns=gr.Probability)
def predict(row: dict[str, float], *, boost: float = 0.0) -> float:
    return 0.5 + boost


one: gr.Prediction[gr.Probability[Any]] = predict({"amount": 1.0}, boost=0.1)
scale_of_one: gr.Probability[Any] = one.value


@gr.guard(model=model, returns=gr.LogOdds, threshold=gr.Threshold(0.0, scale=gr.LogOdds))
def decide(rows: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.zeros(rows.shape[0])


many: gr.Decision[gr.LogOdds[Any]] = decide(np.zeros((3, 2)))


@gr.guard(model=model, returns=gr.Score)
async def predict_async(row: dict[str, float]) -> float:
    return 1.0


async def use_async() -> gr.Prediction[gr.Score[Any]]:
    return await predict_async({"amount": 1.0})


# Action limits: the standalone decorator keeps the action's signature.
limit = gr.ActionLimit("block_card", max_actions=500, per="1h", key=lambda merchant: merchant)


@limit.guard
def block_card(merchant: str) -> str:
    return merchant


blocked: str = block_card("m-1")
allowed_now: bool = limit.allow("m-1")
left: int = limit.remaining("m-1")

# Dynamic thresholds keep their scale, for one score or a batch.
dynamic = gr.DynamicThreshold(target_rate=0.01, initial=gr.Probability(0.9))
dynamic.update(gr.Probability(0.3))
dynamic.update(gr.Probability(np.array([0.1, 0.95])))
saved: gr.Threshold[gr.Probability[float]] = dynamic.current()
dynamic_decision = dynamic.decide(prediction)
dynamic_version: int = dynamic_decision.threshold.version
score_dynamic = gr.DynamicThreshold(target_rate=0.1, initial=gr.Score(2.0), step=0.5)
score_dynamic.update(gr.Score(np.array([1.0, 3.0])))

# Profiles are values built by a mutable builder.
reference = gr.Profile.from_columns({"amount": np.arange(100.0)})
serving_builder: gr.skew.ProfileBuilder = reference.builder()
serving_builder.add_columns({"amount": [1.0, 2.0]})
serving_builder.add_rows([{"amount": 3.0}])
serving_builder.add_profile(reference)
serving: gr.Profile = serving_builder.build()
fleet: gr.Profile = serving.merge(serving)
