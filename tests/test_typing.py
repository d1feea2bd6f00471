"""mypy rejects what guardrail rejects at run time.

``tests/typing/api.py`` (checked by ``mypy`` in the test command) holds code
that must type-check; each snippet here must *fail* to type-check on the line
marked ``# E``.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from mypy import api as mypy_api

pytestmark = pytest.mark.integration  # runs mypy on snippets

PRELUDE = """\
import numpy as np
import guardrail as gr
import guardrail.testing
model = gr.ModelRef(name="m", version="1")
"""

REJECTED = {
    "misspelled_public_name": "gr.Probabilty  # E",
    "limited_action_keeps_its_signature": (
        'gr.ActionLimit("a", max_actions=1, per=1).guard(str.upper)(42)  # E'
    ),
    "dynamic_threshold_other_scale": (
        "gr.DynamicThreshold(target_rate=0.1, initial=gr.Probability(0.9))"
        ".update(gr.LogOdds(0.1))  # E"
    ),
    "dynamic_threshold_clamp_other_scale": (
        "gr.DynamicThreshold(target_rate=0.1, initial=gr.Probability(0.9), "
        "upper=gr.LogOdds(3.0))  # E"
    ),
    "log_odds_plus_probability": "gr.LogOdds(1.0) + gr.Probability(0.3)  # E",
    "probability_plus_log_odds": "gr.Probability(0.3) + gr.LogOdds(1.0)  # E",
    "probability_plus_probability": "gr.Probability(0.3) + gr.Probability(0.3)  # E",
    "log_odds_times_log_odds": "gr.LogOdds(1.0) * gr.LogOdds(2.0)  # E",
    "log_odds_minus_score": "gr.LogOdds(1.0) - gr.Score(2.0)  # E",
    "implicit_float": "float(gr.Probability(0.3))  # E",
    "log_odds_vs_probability_threshold": (
        "gr.Threshold(0.5, scale=gr.Probability).admits(gr.LogOdds(0.1))  # E"
    ),
    "decide_other_scale": (
        "gr.Threshold(0.5, scale=gr.Probability).decide(gr.Prediction(gr.Score(1.0), model))  # E"
    ),
    "scale_equality": "gr.Probability(0.5) == gr.LogOdds(0.0)  # E",
    "string_value": 'gr.Probability("0.3")  # E',
    "scalar_is_not_batch": "x: gr.Probability[float] = gr.Probability(np.zeros(3))  # E",
    "value_of_prediction_is_typed": (
        "y: gr.LogOdds[float] = gr.Prediction(gr.Probability(0.1), model).value  # E"
    ),
    "threshold_scale_must_be_a_scale": "gr.Threshold(0.5, scale=float)  # E",
    "guard_keeps_parameters": (
        "gr.guard(model=model, returns=gr.Probability)(lambda row: 0.5)(1, 2, 3)  # E"
    ),
    "guard_threshold_other_scale": (
        "gr.guard(model=model, returns=gr.Probability, "
        "threshold=gr.Threshold(0.0, scale=gr.LogOdds))  # E"
    ),
    "guard_output_is_typed": (
        "z: gr.Decision[gr.Probability[float]] = "
        "gr.guard(model=model, returns=gr.Probability)(lambda row: 0.5)(1)  # E"
    ),
    "guard_returns_must_be_a_scale": "gr.guard(model=model, returns=float)  # E",
    "threshold_is_not_a_recorder": (
        "gr.guard(model=model, returns=gr.Probability, threshold=gr.Threshold(0.5, "
        "scale=gr.Probability), outcomes=gr.DynamicThreshold(target_rate=0.1, "
        "initial=gr.Probability(0.9)))  # E"
    ),
    "limit_is_not_an_input_monitor": (
        'gr.guard(model=model, returns=gr.Probability, inputs=gr.ActionLimit("a", '
        "max_actions=1, per=1))  # E"
    ),
    "number_is_not_a_recorder": "gr.guard(model=model, returns=gr.Probability, outcomes=42)  # E",
    "monitor_is_not_a_limiter": (
        "gr.guard(model=model, returns=gr.Probability, threshold=gr.Threshold(0.5, "
        "scale=gr.Probability), limits=[gr.OutcomeMonitor()])  # E"
    ),
    "act_is_read_only": "gr.testing.make_call({}, True).act = False  # E",
    "profile_is_frozen": ('gr.Profile.from_columns({"x": [1.0]})["x"].count = 0  # E'),
    "builder_adds_in_place": (
        'p: gr.Profile = gr.skew.ProfileBuilder().add_columns({"x": [1.0]})  # E'
    ),
}


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Run mypy once over every snippet; map snippet name to its output lines."""
    root = tmp_path_factory.mktemp("typing")
    files = []
    for name, snippet in REJECTED.items():
        path = root / f"{name}.py"
        path.write_text(PRELUDE + textwrap.dedent(snippet) + "\n")
        files.append(str(path))
    stdout, stderr, _ = mypy_api.run(
        ["--strict", "--no-incremental", "--show-error-codes", "--no-error-summary", *files]
    )
    assert not stderr, stderr
    out: dict[str, str] = dict.fromkeys(REJECTED, "")
    for line in stdout.splitlines():
        match = re.match(r"(.+?\.py):(\d+): error:", line)
        if match:
            name = Path(match.group(1)).stem
            expected_line = PRELUDE.count("\n") + 1
            if int(match.group(2)) == expected_line:
                out[name] += line + "\n"
    return out


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_mypy_rejects(name: str, mypy_output: dict[str, str]) -> None:
    """The snippet's marked line is a mypy error."""
    assert mypy_output[name], f"mypy accepted: {REJECTED[name]}"
