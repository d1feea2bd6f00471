"""Code that must type-check under ``mypy --strict``; it is never run.

The rejected counterparts live in ``tests/test_typing.py``.
"""

from __future__ import annotations

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
