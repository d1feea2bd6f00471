"""The built-in demo: a small fraud-scoring model, guarded."""

from __future__ import annotations

from typing import TextIO

import numpy as np

from ._model import ModelRef, fingerprint_bytes
from ._prediction import Prediction, Threshold
from ._scales import LogOdds, Probability

__all__ = ["run"]


def run(out: TextIO) -> int:
    """Score generated transactions with a typed, provenance-carrying model."""
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
    rows = rng.normal(size=(10_000, 4))
    scores = LogOdds(rows @ weights).to_probability()
    batch = Prediction(scores, model)
    decision = threshold.decide(batch)
    flagged = int(np.count_nonzero(decision.act))
    one = Prediction(LogOdds(float(rows[0] @ weights)).to_probability(), model)
    print(
        f"model        {model.name} {model.version} (artifact {artifact[:12]})",
        file=out,
    )
    print(f"one row      {one.value!r}  id={one.id}", file=out)
    print(f"batch        {rows.shape[0]} rows scored in one step", file=out)
    print(
        f"threshold    {threshold.value} on {threshold.scale.scale}, version {threshold.version}",
        file=out,
    )
    print(f"flagged      {flagged} rows ({flagged / rows.shape[0]:.2%})", file=out)
    return 0
