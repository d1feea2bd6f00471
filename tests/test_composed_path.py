"""The quiet path composed at decoration time decides exactly as the general path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import guardrail as gr
from guardrail.testing import capture_events

MODEL = gr.ModelRef(name="fraud", version="3.1.0")


def _key(row: dict[str, Any]) -> str:
    if row["key"] == "bad":
        raise ValueError("no key")
    return str(row["key"])


def _mechanisms(setup: dict[str, Any]) -> dict[str, Any]:
    """Fresh mechanisms for one guard, as *setup* describes them."""
    threshold: Any = (
        gr.DynamicThreshold(target_rate=0.3, initial=gr.Probability(0.5))
        if setup["dynamic"]
        else gr.Threshold(0.5, scale=gr.Probability)
    )
    limits = [
        gr.ActionLimit(
            "first",
            max_actions=setup["first_max"],
            per="1h",
            key=_key if setup["keyed"] else None,
            on_exceed=setup["on_exceed"],
        )
    ]
    if setup["second_max"]:
        limits.append(gr.ActionLimit("second", max_actions=setup["second_max"], per="1h"))
    mechanisms: dict[str, Any] = {"threshold": threshold, "limits": limits}
    if setup["holdout"]:
        mechanisms["holdout"] = gr.Holdout(fraction=0.3, unit=lambda row: str(row["key"]), salt="s")
    return mechanisms


def _run(setup: dict[str, Any], rows: list[dict[str, Any]]) -> list[Any]:
    mechanisms = _mechanisms(setup)

    @gr.guard(model=MODEL, returns=gr.Probability, **mechanisms)
    def predict(row: dict[str, Any]) -> float:
        return float(row["score"])

    out: list[Any] = []
    for i, row in enumerate(rows):
        if setup["pause_at"] == i:
            gr.guard_of(predict).pause("test")
        try:
            d = predict(row)
        except gr.errors.ActionLimitExceededError as e:
            out.append(("raised", e.limit))
            continue
        out.append(
            (
                d.act,
                d.above,
                d.reasons,
                d.degraded,
                d.arm,
                d.intended,
                d.propensity,
                d.threshold.value,
            )
        )
    remaining = [
        limit.remaining(key) for limit in mechanisms["limits"] for key in ("a", "b", "bad")
    ]
    return [*out, remaining]


SETUPS = st.fixed_dictionaries(
    {
        "dynamic": st.booleans(),
        "keyed": st.booleans(),
        "first_max": st.integers(1, 4),
        "second_max": st.integers(0, 4),
        "on_exceed": st.sampled_from(["fallback", "report", "raise"]),
        "holdout": st.booleans(),
        "pause_at": st.integers(-1, 12),
    }
)
ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "key": st.sampled_from(["a", "b", "bad"]),
            "score": st.floats(0.0, 1.0),
        }
    ),
    max_size=12,
)


class TestComposedQuietPath:
    @settings(max_examples=150)
    @given(setup=SETUPS, rows=ROWS)
    def test_same_decisions_and_counts_with_and_without_telemetry(
        self, setup: dict[str, Any], rows: list[dict[str, Any]]
    ) -> None:
        """Hooks off (the composed path) and on (the general path) decide and count alike."""
        gr.configure(hooks=[])
        quiet = _run(setup, rows)
        with capture_events():
            loud = _run(setup, rows)
        assert quiet == loud

    def test_a_failing_decider_gives_a_degraded_no_action(self) -> None:
        """A decider that raises leaves the prediction, no action and a degraded decision."""

        class Broken:
            kind = "threshold"
            name = "broken"
            source = gr.mechanisms.Source("threshold", "broken")

            def decide_call(self, call: Any) -> None:
                raise RuntimeError("down")

        gr.configure(hooks=[])
        predict = gr.guard(model=MODEL, returns=gr.Probability, threshold=Broken())(lambda row: 0.9)
        d = predict({"key": "a"})
        assert (d.act, d.above, d.degraded) == (False, False, True)
        assert d.threshold.value == 0.5
        assert gr.guard_of(predict).stats().machinery_errors == 1

    @pytest.mark.parametrize("scale", [gr.Probability, gr.LogOdds, gr.Score])
    def test_a_batch_off_its_scale_still_raises(self, scale: Any) -> None:
        """A batch taken without a copy is still checked: NaN is refused on every scale."""
        import numpy as np

        gr.configure(hooks=[])
        predict = gr.guard(model=MODEL, returns=scale)(lambda rows: np.array([0.5, np.nan]))
        with pytest.raises(gr.errors.PredictionOutOfScaleError):
            predict([[1.0], [2.0]])
        good = gr.guard(model=MODEL, returns=scale)(lambda rows: np.array([0.5, 0.25]))
        assert good([[1.0], [2.0]]).value.value.tolist() == [0.5, 0.25]
