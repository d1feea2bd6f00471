"""The built-in demo: a small fraud-scoring model, guarded."""

from __future__ import annotations

from typing import TextIO

import numpy as np
from numpy.typing import NDArray

from ._guard import guard
from ._model import ModelRef, fingerprint_bytes
from ._prediction import Threshold
from ._scales import Probability

__all__ = ["run"]


def run(out: TextIO) -> int:
    """Score generated transactions through a guarded predict function."""
    rng = np.random.default_rng(7)
    weights = rng.normal(size=4)
    artifact = fingerprint_bytes(weights.tobytes())
    model = ModelRef(
        name="fraud",
        version="1.0.0",
        artifact_sha256=artifact,
        training_data="generated:seed=7",
        consumers=("card-blocker",),
    )
    threshold = Threshold(0.9, scale=Probability, model=model)

    @guard(model=model, returns=Probability, threshold=threshold, name="fraud-demo")
    def predict(rows: NDArray[np.float64]) -> NDArray[np.float64]:
        scores: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-(rows @ weights)))
        return scores

    @guard(model=model, returns=Probability, name="fraud-demo-one")
    def predict_one(row: NDArray[np.float64]) -> float:
        return float(1.0 / (1.0 + np.exp(-(row @ weights))))

    rows = rng.normal(size=(10_000, 4))
    decision = predict(rows)
    one = predict_one(rows[0])
    flagged = int(np.count_nonzero(decision.act))
    print(f"model        {model.name} {model.version} (artifact {artifact[:12]})", file=out)
    print(f"one row      {one.value!r}  id={one.id}", file=out)
    print(f"batch        {rows.shape[0]} rows scored in one guarded call", file=out)
    print(
        f"threshold    {threshold.value} on {threshold.scale.scale}, version {threshold.version}",
        file=out,
    )
    print(f"flagged      {flagged} rows ({flagged / rows.shape[0]:.2%})", file=out)
    return 0
