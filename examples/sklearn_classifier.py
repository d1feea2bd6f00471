"""scikit-learn: train a classifier, build the reference profile, guard ``predict_proba``.

Run::

    python -m pip install 'guardrail-sdk[examples]'
    python examples/sklearn_classifier.py

At training time the reference profile is built from the training columns
and its schema fingerprint goes into the model reference. At serving time a
skew monitor checks every input against it; a batch from a drifted upstream
shows up in the drift report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

import guardrail as gr

FEATURES = ("amount", "age", "device_score")


def make_data(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    """n rows of generated transactions; *shift* moves the amounts upstream."""
    return np.column_stack(
        [
            rng.lognormal(3.5 + shift, 0.9, n),
            rng.normal(41, 13, n).clip(18, 95),
            rng.normal(0, 1, n),
        ]
    )


def main() -> None:
    """Train, profile, guard, serve two batches, and print what the monitor saw."""
    rng = np.random.default_rng(0)
    x_train = make_data(rng, 5_000)
    y_train = rng.random(5_000) < 1 / (1 + np.exp(-(np.log(x_train[:, 0]) - 5 + x_train[:, 2])))
    clf = LogisticRegression(max_iter=1_000).fit(x_train, y_train)

    # At training time: the reference profile, stored next to the model.
    reference = gr.Profile.from_array(x_train, names=FEATURES)
    model = gr.ModelRef(
        name="fraud-sklearn",
        version="1.0.0",
        artifact_sha256=gr.fingerprint_bytes(np.append(clf.coef_, clf.intercept_).tobytes()),
        training_data="generated:seed=0",
        feature_schema=reference.schema.fingerprint,
    )

    # At serving time: the same guard for every batch.
    # Compared when we ask (check() after each batch); a service would let it compare
    # every `every` rows or `seconds`.
    monitor = gr.SkewMonitor(reference=reference, every=1_000_000, seconds=None, seed=0)
    threshold = gr.Threshold(0.5, scale=gr.Probability, model=model)

    @gr.guard(model=model, returns=gr.Probability, inputs=monitor, threshold=threshold)
    def predict(batch: np.ndarray) -> Any:
        return clf.predict_proba(batch)[:, 1]

    for label, shift in (("as trained", 0.0), ("amounts drifted upstream", 1.0)):
        decision = predict(make_data(rng, 2_000, shift))
        report = monitor.check()
        assert report is not None
        blocked = int(np.count_nonzero(decision.act))
        print(f"batch {label}: {blocked} of 2000 flagged; skew {report.severity}")
        for feature in report.drifted:
            worst = feature.worst
            print(f"  {feature.name}: {worst.metric} = {worst.value:.3f} ({feature.severity})")
    print("schema fingerprint:", model.feature_schema[:12] if model.feature_schema else None)


if __name__ == "__main__":
    main()
