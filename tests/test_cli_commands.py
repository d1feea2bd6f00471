"""The command line's profile --like, config command and the hints its errors give."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import guardrail as gr
from guardrail._app.cli import EXIT_FOUND, EXIT_INPUT, EXIT_OK, main

SERVICE = """
import guardrail as gr

model = gr.ModelRef(name="fraud", version="3.1.0")
threshold = gr.Threshold({value}, scale=gr.Probability)


@gr.guard(model=model, returns=gr.Probability, threshold=threshold)
def predict(row):
    return 0.5


def plain(row):
    return 0.5
"""


def csv(path: Path, shift: float, countries: list[str]) -> str:
    rng = np.random.default_rng(0)
    amounts = rng.lognormal(4.0 + shift, 1.0, 1_000)
    picks = rng.choice(countries, 1_000)
    lines = ["amount,country", *(f"{a:.2f},{c}" for a, c in zip(amounts, picks, strict=True))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A module with a guarded function, importable from the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for value, name in ((0.9, "service_a"), (0.8, "service_b")):
        (tmp_path / f"{name}.py").write_text(SERVICE.format(value=value), encoding="utf-8")
    yield tmp_path
    for name in ("service_a", "service_b"):
        sys.modules.pop(name, None)


class TestProfileLike:
    def test_builds_on_the_references_layout(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """profile --like gives a profile compare accepts; without it, the bins differ."""
        reference = str(tmp_path / "ref.json")
        train = csv(tmp_path / "train.csv", 0.0, ["FR", "DE"])
        serving = csv(tmp_path / "serving.csv", 0.5, ["FR", "BR"])
        assert main(["profile", train, "-o", reference]) == EXIT_OK
        alone, like = str(tmp_path / "alone.json"), str(tmp_path / "like.json")
        assert main(["profile", serving, "-o", alone]) == EXIT_OK
        assert main(["profile", serving, "--like", reference, "-o", like]) == EXIT_OK
        capsys.readouterr()
        assert main(["compare", reference, like]) == EXIT_FOUND
        built = gr.Profile.from_json(Path(like).read_text(encoding="utf-8"))
        ref = gr.Profile.from_json(Path(reference).read_text(encoding="utf-8"))
        assert built["amount"].to_dict()["edges"] == ref["amount"].to_dict()["edges"]
        assert main(["compare", reference, alone]) == EXIT_INPUT
        error = capsys.readouterr().err
        assert f"--like {reference}" in error
        assert "Traceback" not in error

    def test_a_like_that_is_not_a_profile_is_an_input_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--like naming a CSV exits 3 and says to profile it first."""
        train = csv(tmp_path / "train.csv", 0.0, ["FR"])
        assert main(["profile", train, "--like", train, "-o", str(tmp_path / "x.json")]) == 3
        assert f"guardrail profile {train} -o" in capsys.readouterr().err
        assert not (tmp_path / "x.json").exists()


class TestHints:
    def test_a_csv_given_as_the_reference_says_to_profile_it(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A data file where a profile is expected: the error names the profile command."""
        train = csv(tmp_path / "train.csv", 0.0, ["FR"])
        assert main(["compare", train, train]) == EXIT_INPUT
        error = capsys.readouterr().err
        assert "not a profile JSON" in error
        assert f"guardrail profile {train} -o train.json" in error

    def test_malformed_json_suggests_it_may_be_data(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A reference that is not JSON, whatever its name, gets the same hint."""
        odd = tmp_path / "ref.txt"
        odd.write_text("amount\n1.0\n", encoding="utf-8")
        assert main(["compare", str(odd), str(odd)]) == EXIT_INPUT
        error = capsys.readouterr().err
        assert "malformed JSON" in error
        assert "guardrail profile" in error


class TestConfig:
    def test_writes_what_diff_reads(
        self, service: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """config MODULE:FUNCTION writes the guard's configuration; diff shows the change."""
        assert main(["config", "service_a:predict", "-o", "a.json"]) == EXIT_OK
        assert main(["config", "service_b:predict", "-o", "b.json"]) == EXIT_OK
        data = json.loads((service / "a.json").read_text(encoding="utf-8"))
        assert gr.GuardConfig.from_dict(data).model.version == "3.1.0"
        capsys.readouterr()
        assert main(["diff", "a.json", "b.json"]) == EXIT_FOUND
        assert "~ mechanisms[threshold].settings.value: 0.9 -> 0.8" in capsys.readouterr().out

    def test_writes_a_model_reference(self, service: Path) -> None:
        """config MODULE:NAME of a ModelRef writes its JSON."""
        assert main(["config", "service_a:model", "-o", "m.json"]) == EXIT_OK
        text = (service / "m.json").read_text(encoding="utf-8")
        assert gr.ModelRef.from_json(text).version == "3.1.0"

    @pytest.mark.parametrize(
        ("target", "message"),
        [
            ("service_a", "MODULE:FUNCTION"),
            ("service_a:missing", "has no missing"),
            ("service_a:plain", "@guardrail.guard"),
            ("no_such_module_here:predict", "PYTHONPATH"),
        ],
    )
    def test_bad_targets_are_input_errors(
        self, service: Path, target: str, message: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A target that is not a guarded function or ModelRef exits 3 and says why."""
        assert main(["config", target, "-o", "x.json"]) == EXIT_INPUT
        assert message in capsys.readouterr().err
        assert not (service / "x.json").exists()
